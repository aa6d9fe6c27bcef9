//! One run from start to report: connect to (or start) the server, run the load, let the
//! cases settle, read everything back as an agent, check the invariants, write the report.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::agents::{self, Agents, AgentsReport, FixLog, StreamStats, Subscribers};
use crate::api::{Api, CallError};
use crate::cli::{AgentsArgs, Cli, Command, FleetArgs, PositionsArgs, RequestsArgs};
use crate::console::Console;
use crate::fleet::{Behaviour, Fleet, FleetSpec};
use crate::history::{CaseHistory, CaseRecord};
use crate::invariants::{self, Acknowledged, Evidence, Verdict};
use crate::machine::MachineSampler;
use crate::positions::{self, PositionsSpec};
use crate::report::{self, MachineInfo, Report, Series, TargetInfo};
use crate::requests::{self, RequestsSpec};
use crate::scenario::Scenario;
use crate::server::{Sampler, SpawnSpec, SpawnedServer};
use crate::server_metrics;
use crate::sim::City;
use crate::stats::Recorder;
use crate::target::Target;

/// Statuses in which a case still waits for the server or a provider.
const ACTIVE: &str = "new,dispatching,assigned,en_route,on_scene,in_service";
/// Statuses in which a case waits for the server alone.
const WAITING_FOR_SERVER: &str = "new,dispatching";
/// Statuses after which nothing changes by itself.
const FINAL: &[&str] = &["completed", "cancelled", "resolved_remotely"];
/// Read-backs in flight at once.
const READ_CONCURRENCY: usize = 8;
/// A case still `new` this long after creation was never picked up.
const STUCK_AFTER_S: i64 = 30;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every invariant held.
    Passed,
    /// At least one invariant was violated.
    Violated,
}

/// The connection to the server and everything shared by the phases of a run.
struct Session {
    api: Api,
    admin_token: String,
    agent_token: String,
    console: Console,
    recorder: Arc<Recorder>,
    started_at: DateTime<Utc>,
    seed: u64,
    run_tag: String,
    report_dir: PathBuf,
    /// Cancelled by Ctrl-C: the load stops, the report is still written.
    interrupted: CancellationToken,
    server: Option<SpawnedServer>,
    samplers_stop: CancellationToken,
    server_sampler: Option<Sampler>,
    own_sampler: Sampler,
    machine_sampler: MachineSampler,
    target_info: TargetInfo,
    /// The server's JT/T 808 port.
    jt808_addr: std::net::SocketAddr,
}

impl Session {
    async fn open(cli: &Cli, scenario: Option<&Scenario>) -> anyhow::Result<Session> {
        let global = &cli.global;
        let console = Console::new();
        let recorder = Arc::new(Recorder::new());
        let started_at = Utc::now();
        let seed = global.seed.or(scenario.and_then(|s| s.seed)).unwrap_or(1);
        let run_tag = format!("lt{}", started_at.timestamp_millis());
        std::fs::create_dir_all(&global.report).with_context(|| {
            format!("creating the report directory {}", global.report.display())
        })?;

        let binary = global
            .spawn_server
            .clone()
            .or_else(|| scenario.and_then(|s| s.server.binary.clone()));
        let (server, target, admin_token, server_env) = match binary {
            Some(binary) => {
                let mut env: BTreeMap<String, String> =
                    scenario.map(|s| s.server.env.clone()).unwrap_or_default();
                env.extend(global.server_env.iter().cloned());
                if let Some(token) = &global.admin_token {
                    env.entry("RESCUE_ADMIN_TOKEN".to_owned())
                        .or_insert_with(|| token.clone());
                }
                console.note(format!("starting {} serve …", binary.display()));
                let spec = SpawnSpec {
                    binary: binary.clone(),
                    env,
                    log_path: global.report.join("server.log"),
                };
                let server = SpawnedServer::start(&spec).await?;
                let target = server.target.clone();
                let admin_token = server.admin_token.clone();
                let env_shown = server.env_shown.clone();
                console.note(format!(
                    "server {} (pid {}) ready at {}",
                    binary.display(),
                    server.pid().unwrap_or_default(),
                    target.base_url
                ));
                (Some(server), target, admin_token, env_shown)
            }
            None => {
                if !global.server_env.is_empty() {
                    bail!("--server-env only applies with --spawn-server");
                }
                let target = Target::parse(&global.url)?;
                let admin_token = global
                    .admin_token
                    .clone()
                    .context("give the server's admin token with --admin-token or RESCUE_ADMIN_TOKEN (or use --spawn-server)")?;
                (None, target, admin_token, BTreeMap::new())
            }
        };
        let jt808_addr = server
            .as_ref()
            .and_then(|server| server.jt808_addr)
            .unwrap_or(global.jt808_addr);
        let api = Api::new(target.clone(), Duration::from_secs(30))?;
        if !api.ready().await {
            bail!(
                "the server at {} is not ready (GET /readyz)",
                target.base_url
            );
        }
        let agent_token = api
            .create_agent(&admin_token, &format!("load-agent-{run_tag}"))
            .await?;

        let samplers_stop = CancellationToken::new();
        let server_pid = server
            .as_ref()
            .and_then(SpawnedServer::pid)
            .or(global.server_pid);
        let server_sampler =
            server_pid.map(|pid| Sampler::start(pid, recorder.started(), samplers_stop.clone()));
        let own_sampler = Sampler::start(
            std::process::id(),
            recorder.started(),
            samplers_stop.clone(),
        );
        let machine_sampler = MachineSampler::start(recorder.started(), samplers_stop.clone());

        let interrupted = CancellationToken::new();
        {
            let (interrupted, console) = (interrupted.clone(), console.clone());
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    console.note("interrupted: stopping the load; the report follows");
                    interrupted.cancel();
                }
            });
        }
        let database = match server_env.get("DATABASE_URL") {
            Some(url) if url.starts_with("postgres") => "postgres",
            Some(_) => "sqlite",
            None if server.is_some() => "sqlite",
            None => "unknown",
        };
        let target_info = TargetInfo {
            url: target.base_url.clone(),
            spawned: server.is_some(),
            server_binary: global
                .spawn_server
                .as_ref()
                .map(|path| path.display().to_string())
                .or_else(|| {
                    scenario.and_then(|s| s.server.binary.as_ref().map(|p| p.display().to_string()))
                }),
            server_env,
            database: database.to_owned(),
        };
        Ok(Session {
            api,
            admin_token,
            agent_token,
            console,
            recorder,
            started_at,
            seed,
            run_tag,
            report_dir: global.report.clone(),
            interrupted,
            server,
            samplers_stop,
            server_sampler,
            own_sampler,
            machine_sampler,
            target_info,
            jt808_addr,
        })
    }

    /// Waits until no case of the run is in one of `statuses`, or `limit` has passed.
    async fn settle(&self, statuses: &str, limit: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + limit;
        let bar = self.console.timer(limit, "settling");
        let started = Instant::now();
        loop {
            let page = retry(|| {
                self.api
                    .list_cases(&self.agent_token, self.since(), Some(statuses), 200, None)
            })
            .await
            .context("listing cases still in progress")?;
            let open = page.cases.len();
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(format!(
                "{open}{} cases in progress",
                if page.next_cursor.is_some() { "+" } else { "" }
            ));
            if open == 0 || Instant::now() >= deadline || self.interrupted.is_cancelled() {
                bar.finish_and_clear();
                return Ok(open);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Cases created from a second before the run started (clocks of one machine).
    fn since(&self) -> DateTime<Utc> {
        self.started_at - chrono::Duration::seconds(1)
    }

    /// Reads every case of the run back and checks the invariants; cases that were still
    /// moving while being read are read again before a violation is believed.
    async fn check(
        &self,
        acknowledged: &[Acknowledged],
    ) -> anyhow::Result<(Vec<CaseHistory>, Vec<Verdict>)> {
        let listed = list_all(&self.api, &self.agent_token, self.since()).await?;
        let listed_ids: Vec<String> = listed.iter().map(|case| case.id.clone()).collect();
        let mut seen = HashSet::new();
        let unique: Vec<CaseRecord> = listed
            .into_iter()
            .filter(|case| seen.insert(case.id.clone()))
            .collect();
        let bar = self.console.counter(unique.len() as u64, "reading back");
        let mut histories: Vec<CaseHistory> = futures::stream::iter(unique)
            .map(|case| {
                let bar = bar.clone();
                async move {
                    let history = read_history(&self.api, &self.agent_token, case).await;
                    bar.inc(1);
                    history
                }
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        bar.finish_and_clear();
        histories.sort_by(|a, b| {
            a.case
                .created_at
                .cmp(&b.case.created_at)
                .then(a.case.id.cmp(&b.case.id))
        });
        let mut verdicts = self.verdicts(&histories, &listed_ids, acknowledged);
        for _ in 0..3 {
            if verdicts.iter().all(Verdict::holds) {
                break;
            }
            // Offers still open and statuses still changing can make histories read at
            // different moments disagree: read those cases again, consistently.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let moving: Vec<usize> = histories
                .iter()
                .enumerate()
                .filter(|(_, history)| is_moving(history))
                .map(|(index, _)| index)
                .collect();
            if moving.is_empty() {
                break;
            }
            self.console.note(format!(
                "re-reading {} cases that were still moving",
                moving.len()
            ));
            let refreshed: Vec<anyhow::Result<(usize, CaseHistory)>> =
                futures::stream::iter(moving)
                    .map(|index| {
                        let id = histories[index].case.id.clone();
                        async move {
                            refresh_history(&self.api, &self.agent_token, &id)
                                .await
                                .map(|h| (index, h))
                        }
                    })
                    .buffer_unordered(READ_CONCURRENCY)
                    .collect()
                    .await;
            for result in refreshed {
                let (index, history) = result?;
                histories[index] = history;
            }
            verdicts = self.verdicts(&histories, &listed_ids, acknowledged);
        }
        Ok((histories, verdicts))
    }

    fn verdicts(
        &self,
        histories: &[CaseHistory],
        listed_ids: &[String],
        acknowledged: &[Acknowledged],
    ) -> Vec<Verdict> {
        invariants::check(&Evidence {
            histories,
            listed_ids,
            acknowledged,
            checked_at: Utc::now(),
            stuck_after: chrono::Duration::seconds(STUCK_AFTER_S),
        })
    }

    /// Stops the samplers and the server, builds and writes the report.
    async fn finish(
        self,
        command: String,
        mut report_parts: ReportParts,
    ) -> anyhow::Result<Outcome> {
        let server_usage = self
            .server_sampler
            .as_ref()
            .map(|s| s.finish(self.recorder.started()));
        let own_usage = self.own_sampler.finish(self.recorder.started());
        let machine_usage = self.machine_sampler.finish(self.recorder.started());
        self.samplers_stop.cancel();
        if let Some(server) = self.server {
            let clean = server.stop().await?;
            if !clean {
                self.console
                    .note("warning: the server did not exit cleanly on SIGTERM (see server.log)");
                self.recorder.error("server: unclean exit");
            }
        }
        let finished_at = Utc::now();
        let passed = report_parts.verdicts.iter().all(Verdict::holds);
        let mut report = Report {
            tool: format!("load-tests {}", env!("CARGO_PKG_VERSION")),
            command,
            run_tag: self.run_tag.clone(),
            seed: self.seed,
            started_at: self.started_at,
            finished_at,
            duration_s: (finished_at - self.started_at).num_milliseconds() as f64 / 1000.0,
            target: self.target_info,
            machine: MachineInfo {
                cpus: std::thread::available_parallelism().map_or(1, usize::from),
                note: "the server and the load generator share these cores".to_owned(),
                usage: Some(machine_usage),
            },
            fleet: report_parts.fleet.take(),
            positions: report_parts.positions.take(),
            requests: report_parts.requests.take(),
            dispatch: report_parts.dispatch.take(),
            agents: report_parts.agents.take(),
            latencies: BTreeMap::new(),
            counts: BTreeMap::new(),
            errors: BTreeMap::new(),
            server: server_usage,
            load_generator: Some(own_usage),
            invariants: report_parts.verdicts,
            targets: Vec::new(),
            series: Series::default(),
            passed,
        };
        report.take_recordings(&self.recorder.snapshot());
        report.check_targets();
        report.write(&self.report_dir)?;
        print_summary(&self.console, &report, &self.report_dir);
        Ok(if passed {
            Outcome::Passed
        } else {
            Outcome::Violated
        })
    }
}

/// The sections a command contributes to the report.
#[derive(Debug, Default)]
struct ReportParts {
    fleet: Option<serde_json::Value>,
    positions: Option<positions::PositionsOutcome>,
    requests: Option<serde_json::Value>,
    dispatch: Option<report::DispatchReport>,
    agents: Option<AgentsReport>,
    verdicts: Vec<Verdict>,
}

/// Agents on the live feed during a run.
struct Watching {
    setup_s: f64,
    subscribers: Subscribers,
    stats: Arc<StreamStats>,
    fail_on_missed: bool,
}

/// What the agents saw, before the read-back.
struct Watched {
    setup_s: f64,
    logs: Vec<agents::SubscriberLog>,
    stopped_at: DateTime<Utc>,
    stats: Arc<StreamStats>,
    fail_on_missed: bool,
}

impl Watching {
    /// Creates `count` agents and subscribes them all; waits until they are connected.
    async fn start(
        session: &Session,
        count: usize,
        fail_on_missed: bool,
    ) -> anyhow::Result<Watching> {
        let agents = Agents::setup(
            &session.api,
            &session.admin_token,
            count,
            &session.run_tag,
            &session.console,
        )
        .await?;
        let stats = Arc::new(StreamStats::new(session.started_at));
        let stop = session.interrupted.child_token();
        let subscribers = agents.start(&session.api, &stats, &session.recorder, &stop)?;
        let connected = subscribers.wait_connected(Duration::from_secs(15)).await;
        session.console.note(format!(
            "{connected} of {} agents subscribed to /v1/stream",
            agents.count()
        ));
        Ok(Watching {
            setup_s: agents.setup_s,
            subscribers,
            stats,
            fail_on_missed,
        })
    }

    /// Stops the subscribers.
    async fn stop(self) -> Watched {
        let (logs, stopped_at) = self.subscribers.stop().await;
        Watched {
            setup_s: self.setup_s,
            logs,
            stopped_at,
            stats: self.stats,
            fail_on_missed: self.fail_on_missed,
        }
    }
}

impl Watched {
    /// The report section, checked against the timelines read back; the verdict joins the
    /// invariants when the run is to fail on a missed event.
    fn finish(
        self,
        session: &Session,
        histories: &[CaseHistory],
        fix_log: Option<&FixLog>,
        verdicts: &mut Vec<Verdict>,
    ) -> AgentsReport {
        let timeline_events: Vec<(i64, DateTime<Utc>)> = histories
            .iter()
            .flat_map(|history| history.timeline.iter())
            .filter(|event| event.id > 0)
            .map(|event| (event.id, event.at))
            .collect();
        let window_end = self.stopped_at
            - chrono::Duration::from_std(agents::DELIVERY_GRACE).unwrap_or_default();
        let (mut report, verdict) = agents::build_report(
            &self.logs,
            &self.stats.snapshot(),
            &timeline_events,
            window_end,
            fix_log,
            self.stats.origin(),
        );
        report.setup_s = self.setup_s;
        if report.missed_events > 0 {
            session
                .recorder
                .errors("stream: missed event", report.missed_events);
        }
        let never = report.agents - report.connected;
        if never > 0 {
            session
                .recorder
                .errors("stream: never connected", never as u64);
        }
        if self.fail_on_missed {
            verdicts.push(verdict);
        } else if !verdict.holds() {
            session.console.note(format!(
                "agents: {} (not failing the run: missed events allowed)",
                verdict.violations.first().cloned().unwrap_or_default()
            ));
        }
        report
    }
}

fn print_summary(console: &Console, report: &Report, dir: &std::path::Path) {
    for target in &report.targets {
        console.note(format!(
            "{}: {} (target {}, {})",
            target.name,
            target.measured,
            target.target,
            if target.met { "met" } else { "MISSED" }
        ));
    }
    if let Some(agents) = &report.agents {
        let show =
            |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1}"));
        console.note(format!(
            "SSE event latency ms ({} agents connected of {}, {} events, {} receipts): p50 {} p90 {} p99 {} max {}",
            agents.connected,
            agents.agents,
            agents.events,
            agents.receipts,
            show(agents.latency.p50_ms),
            show(agents.latency.p90_ms),
            show(agents.latency.p99_ms),
            show(agents.latency.max_ms)
        ));
        console.note(format!(
            "  alert_raised: p50 {} p99 {} ({} receipts); other kinds: p50 {} p99 {}",
            show(agents.latency_alerts.p50_ms),
            show(agents.latency_alerts.p99_ms),
            agents.latency_alerts.count,
            show(agents.latency_other.p50_ms),
            show(agents.latency_other.p99_ms)
        ));
        let fix = &agents.fix_to_alert;
        if fix.alerts > 0 {
            console.note(format!(
                "fix → alert on the stream ms ({} of {} fix-triggered alerts linked, {} receipts): p50 {} p90 {} p99 {} max {} (fix sent → recorded p50 {} p99 {})",
                fix.linked_alerts,
                fix.alerts,
                fix.receipts,
                show(fix.latency.p50_ms),
                show(fix.latency.p90_ms),
                show(fix.latency.p99_ms),
                show(fix.latency.max_ms),
                show(fix.to_recorded.p50_ms),
                show(fix.to_recorded.p99_ms)
            ));
        }
        for (kind, figures) in &agents.alerts_by_kind {
            console.note(format!(
                "  alert {kind}: {} alerts, {} receipts, SSE latency p50 {} p99 {} max {}{}",
                figures.alerts,
                figures.receipts,
                show(figures.latency.p50_ms),
                show(figures.latency.p99_ms),
                show(figures.latency.max_ms),
                if figures.fix_triggered {
                    " (raised on a fix)"
                } else {
                    ""
                }
            ));
        }
        console.note(format!(
            "stream: every subscriber saw every event: {} (missed {}, expected per subscriber {}–{}); reconnects {}, failed connects {}, id gaps {} ({} ids), repeats {}",
            if agents.complete { "yes" } else { "NO" },
            agents.missed_events,
            agents.expected_per_subscriber[0],
            agents.expected_per_subscriber[1],
            agents.reconnects,
            agents.connect_failures,
            agents.gaps,
            agents.gap_ids,
            agents.repeats
        ));
    }
    if let Some(dispatch) = &report.dispatch {
        let show =
            |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.2}"));
        console.note(format!(
            "dispatch latency ms (created → first offer, {} cases): p50 {} p90 {} p99 {} max {}",
            dispatch.latency.count,
            show(dispatch.latency.p50_ms),
            show(dispatch.latency.p90_ms),
            show(dispatch.latency.p99_ms),
            show(dispatch.latency.max_ms)
        ));
    }
    let errors: u64 = report.errors.values().sum();
    console.note(format!("errors: {errors}"));
    for verdict in &report.invariants {
        console.note(format!(
            "invariant {}: {} ({} checked){}",
            verdict.name,
            if verdict.holds() { "holds" } else { "VIOLATED" },
            verdict.checked,
            verdict
                .violations
                .first()
                .map(|v| format!(": {v}"))
                .unwrap_or_default()
        ));
    }
    console.note(format!("report: {}", dir.join("report.md").display()));
}

/// Whether a case may still change: not in a final status, or holding an open offer.
fn is_moving(history: &CaseHistory) -> bool {
    !FINAL.contains(&history.case.status.as_str())
        || history.offers.iter().any(|offer| {
            offer.state == "pending" || (offer.state == "accepted" && offer.released_at.is_none())
        })
}

/// Retries a read a few times on transport errors and 503s.
async fn retry<T, F, Fut>(mut call: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(error) if error.is_retryable() && attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
            }
            other => return other,
        }
    }
}

async fn list_all(api: &Api, agent: &str, since: DateTime<Utc>) -> anyhow::Result<Vec<CaseRecord>> {
    let mut cases = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = retry(|| api.list_cases(agent, since, None, 200, cursor.as_deref()))
            .await
            .context("listing the run's cases")?;
        cases.extend(page.cases);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(cases),
        }
    }
}

fn normalise(mut history: CaseHistory) -> CaseHistory {
    for offer in &mut history.offers {
        offer.state = offer.state.to_ascii_lowercase();
    }
    history
}

/// Reads a listed case's timeline and offers; if the timeline disagrees with the listed
/// status (it moved since), reads the case again consistently.
async fn read_history(api: &Api, agent: &str, case: CaseRecord) -> anyhow::Result<CaseHistory> {
    let timeline = retry(|| api.timeline(agent, &case.id))
        .await
        .with_context(|| format!("reading the timeline of case {}", case.id))?;
    let offers = retry(|| api.case_offers(agent, &case.id))
        .await
        .with_context(|| format!("reading the offers of case {}", case.id))?;
    let history = normalise(CaseHistory {
        case,
        timeline,
        offers,
    });
    if history.status_by_timeline() == Some(history.case.status.as_str()) {
        return Ok(history);
    }
    refresh_history(api, agent, &history.case.id).await
}

/// Reads a case, its timeline and offers so that they agree: the timeline is read before
/// and after the case, until both reads are the same (a status change always appends an
/// event in the same transaction).
async fn refresh_history(api: &Api, agent: &str, case_id: &str) -> anyhow::Result<CaseHistory> {
    let mut history = None;
    for _ in 0..5 {
        let before = retry(|| api.timeline(agent, case_id)).await?;
        let case = retry(|| api.case(agent, case_id))
            .await
            .with_context(|| format!("reading case {case_id}"))?;
        let offers = retry(|| api.case_offers(agent, case_id)).await?;
        let after = retry(|| api.timeline(agent, case_id)).await?;
        let stable = before.len() == after.len();
        history = Some(normalise(CaseHistory {
            case,
            timeline: after,
            offers,
        }));
        if stable {
            break;
        }
    }
    history.context("no read of the case")
}

/// Runs the command line; returns whether the invariants held.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command.clone() {
        Command::Fleet(args) => run_fleet(&cli, &args).await,
        Command::Requests(args) => run_requests(&cli, &args).await,
        Command::Positions(args) => run_positions(&cli, &args).await,
        Command::Agents(args) => run_agents(&cli, &args).await,
        Command::Scenario(args) => {
            let scenario = Scenario::load(&args.file)?;
            run_scenario(&cli, &scenario, &args.file.display().to_string()).await
        }
    }
}

fn behaviour_of(args: &crate::cli::BehaviourArgs) -> Behaviour {
    Behaviour {
        accept: args.accept,
        decline: args.decline,
        answer_delay_s: args.answer_delay_s,
        job_step_s: args.job_step_s,
        poll_interval_ms: args.poll_ms,
    }
}

fn fleet_json(fleet: &Fleet, recorder: &Recorder, ran_s: f64) -> serde_json::Value {
    let spec = fleet.spec();
    json!({
        "vehicles": spec.vehicles,
        "providers": spec.providers,
        "interval_s": spec.interval_s,
        "jt808_share": spec.jt808_share,
        "jt808_terminals": recorder.total(crate::fleet::names::JT808_TERMINALS),
        "jt808_reports_acked_per_s": recorder.total(crate::fleet::names::JT808_ACKED) as f64 / ran_s.max(1e-9),
        "jt808_reports_dropped": recorder.total(crate::fleet::names::JT808_DROPPED),
        "behaviour": spec.behaviour,
        "misbehaviour": spec.misbehaviour.any().then_some(&spec.misbehaviour),
        "city": spec.city,
        "setup_s": fleet.setup_s,
        "ran_s": ran_s,
        "fixes_accepted_per_s": recorder.total(crate::fleet::names::FIXES_ACCEPTED) as f64 / ran_s.max(1e-9),
    })
}

/// Runs the fleet for `duration` (or until interrupted), showing live figures.
async fn drive_fleet(session: &Session, fleet: &Fleet, duration: Duration, what: &str) -> TaskStop {
    let stop = session.interrupted.child_token();
    let tasks = fleet.start(&session.api, &session.recorder, &stop);
    let bar = session.console.timer(duration, what);
    let started = Instant::now();
    let recorder = session.recorder.clone();
    let ticker_stop = stop.clone();
    let ticker = tokio::spawn({
        let bar = bar.clone();
        async move {
            let mut last = recorder.total(crate::fleet::names::FIXES_ACCEPTED);
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = ticker_stop.cancelled() => return,
                    _ = interval.tick() => {}
                }
                let now = recorder.total(crate::fleet::names::FIXES_ACCEPTED);
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!(
                    "{} fixes/s, {} offers, {} jobs done, {} errors",
                    now - last,
                    recorder.total(crate::fleet::names::OFFERS_SEEN),
                    recorder.total(crate::fleet::names::JOBS_COMPLETED),
                    recorder.error_total()
                ));
                last = now;
            }
        }
    });
    TaskStop {
        stop,
        tasks,
        ticker,
        bar,
        started,
    }
}

/// A running fleet, to be stopped.
struct TaskStop {
    stop: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
    ticker: tokio::task::JoinHandle<()>,
    bar: indicatif::ProgressBar,
    started: Instant,
}

impl TaskStop {
    async fn stop(self) -> f64 {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.ticker.abort();
        self.bar.finish_and_clear();
        self.started.elapsed().as_secs_f64()
    }
}

async fn sleep_or_interrupt(session: &Session, duration: Duration) {
    tokio::select! {
        _ = session.interrupted.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

async fn run_fleet(cli: &Cli, args: &FleetArgs) -> anyhow::Result<Outcome> {
    let session = Session::open(cli, None).await?;
    let spec = FleetSpec {
        vehicles: args.vehicles,
        providers: args.providers,
        interval_s: args.interval_s,
        jt808_share: args.jt808_share,
        jt808_addr: Some(session.jt808_addr),
        behaviour: behaviour_of(&args.behaviour),
        misbehaviour: crate::fleet::Misbehaviour::default(),
        city: City::default(),
        seed: session.seed,
        run_tag: session.run_tag.clone(),
    };
    let fleet = Fleet::setup(
        &session.api,
        &session.admin_token,
        spec,
        &session.console,
        &session.recorder,
    )
    .await?;
    let running = drive_fleet(
        &session,
        &fleet,
        Duration::from_secs(args.duration_s),
        "fleet",
    )
    .await;
    sleep_or_interrupt(&session, Duration::from_secs(args.duration_s)).await;
    let ran_s = running.stop().await;
    let (histories, verdicts) = session.check(&[]).await?;
    let parts = ReportParts {
        fleet: Some(fleet_json(&fleet, &session.recorder, ran_s)),
        dispatch: (!histories.is_empty())
            .then(|| report::dispatch_report(&histories, session.started_at)),
        verdicts,
        ..ReportParts::default()
    };
    session
        .finish(
            format!(
                "fleet --vehicles {} --providers {}",
                args.vehicles, args.providers
            ),
            parts,
        )
        .await
}

async fn run_requests(cli: &Cli, args: &RequestsArgs) -> anyhow::Result<Outcome> {
    let session = Session::open(cli, None).await?;
    let spec = RequestsSpec {
        rate: args.rate,
        steps: Vec::new(),
        duration: args
            .duration_s
            .map(Duration::from_secs)
            .or_else(|| args.count.is_none().then(|| Duration::from_secs(60))),
        count: args.count,
        max_retries: args.max_retries,
        city: City::default(),
        seed: session.seed,
        run_tag: session.run_tag.clone(),
    };
    let outcome = requests::run(
        &session.api,
        &spec,
        &session.recorder,
        &session.console,
        &session.interrupted,
    )
    .await?;
    let open = session
        .settle(WAITING_FOR_SERVER, Duration::from_secs(args.drain_s))
        .await?;
    if open > 0 {
        session.console.note(format!(
            "{open} cases still waiting for the server after the drain"
        ));
    }
    let (histories, verdicts) = session.check(&outcome.acknowledged).await?;
    let parts = ReportParts {
        requests: Some(json!({
            "rate": spec.rate, "planned": spec.planned(), "max_retries": spec.max_retries,
            "acknowledged": outcome.acknowledged.len(), "sent_s": outcome.elapsed.as_secs_f64(),
        })),
        dispatch: Some(report::dispatch_report(&histories, session.started_at)),
        verdicts,
        ..ReportParts::default()
    };
    session
        .finish(format!("requests --rate {}", args.rate), parts)
        .await
}

async fn run_positions(cli: &Cli, args: &PositionsArgs) -> anyhow::Result<Outcome> {
    let session = Session::open(cli, None).await?;
    let spec = PositionsSpec {
        vehicles: args.vehicles,
        providers: args.providers,
        connections: args.connections,
        batch_size: args.batch_size,
        duration: Duration::from_secs(args.duration_s),
        warmup: Duration::from_secs(args.warmup_s.min(args.duration_s.saturating_sub(1))),
        city: City::default(),
        seed: session.seed,
        run_tag: session.run_tag.clone(),
    };
    let outcome = positions::run(
        &session.api,
        &session.admin_token,
        &spec,
        &session.recorder,
        &session.console,
        &session.interrupted,
    )
    .await?;
    let (_, verdicts) = session.check(&[]).await?;
    let parts = ReportParts {
        positions: Some(outcome),
        verdicts,
        ..ReportParts::default()
    };
    session
        .finish(
            format!(
                "positions --vehicles {} --connections {} --batch-size {}",
                args.vehicles, args.connections, args.batch_size
            ),
            parts,
        )
        .await
}

async fn run_scenario(cli: &Cli, scenario: &Scenario, file: &str) -> anyhow::Result<Outcome> {
    let session = Session::open(cli, Some(scenario)).await?;
    if let Some(name) = &scenario.name {
        session.console.note(format!("scenario: {name}"));
    }
    let fleet_spec = FleetSpec {
        vehicles: scenario.fleet.vehicles,
        providers: scenario.fleet.providers,
        interval_s: scenario.fleet.interval_s,
        jt808_share: scenario.fleet.jt808_share,
        jt808_addr: Some(session.jt808_addr),
        behaviour: scenario.fleet.behaviour.clone(),
        misbehaviour: scenario.fleet.misbehaviour.clone(),
        city: scenario.city,
        seed: session.seed,
        run_tag: session.run_tag.clone(),
    };
    let fleet = Fleet::setup(
        &session.api,
        &session.admin_token,
        fleet_spec,
        &session.console,
        &session.recorder,
    )
    .await?;
    let watching = match &scenario.agents {
        Some(agents) => Some(Watching::start(&session, agents.count, agents.fail_on_missed).await?),
        None => None,
    };
    let request_seconds = scenario.request_seconds();
    let total = Duration::from_secs(request_seconds + scenario.drain_s);
    let running = drive_fleet(&session, &fleet, total, "fleet").await;
    let steps = scenario.rate_steps();
    let requests_spec = RequestsSpec {
        rate: steps
            .first()
            .map_or(scenario.requests.rate, |step| step.rate),
        steps: steps.clone(),
        duration: Some(Duration::from_secs(request_seconds)),
        count: scenario.requests.count,
        max_retries: scenario.requests.max_retries,
        city: scenario.city,
        seed: session.seed,
        run_tag: session.run_tag.clone(),
    };
    // The server's own dispatch-latency histogram, read once a second from now on.
    let (stop_sampling, sampling) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(server_metrics::sample(
        session.api.clone(),
        std::time::Instant::now(),
        sampling,
    ));
    let outcome = requests::run(
        &session.api,
        &requests_spec,
        &session.recorder,
        &session.console,
        &session.interrupted,
    )
    .await;
    // The fleet keeps answering offers and driving jobs while the cases settle.
    let settled = match &outcome {
        Ok(_) => {
            session
                .settle(ACTIVE, Duration::from_secs(scenario.drain_s))
                .await
        }
        Err(_) => Ok(0),
    };
    let _ = stop_sampling.send(true);
    let readings = sampler.await.ok();
    // The server's metrics as the run left them, for a closer look (the writer queue).
    if let Ok(text) = session.api.text(reqwest::Method::GET, "/metrics").await {
        let _ = std::fs::create_dir_all(&session.report_dir);
        if let Err(error) = std::fs::write(session.report_dir.join("server-metrics.txt"), text) {
            session
                .console
                .note(format!("cannot save the server's metrics: {error}"));
        }
    }
    let watched = match watching {
        Some(watching) => Some(watching.stop().await),
        None => None,
    };
    let ran_s = running.stop().await;
    let outcome = outcome?;
    let open = settled?;
    if open > 0 {
        session.console.note(format!(
            "{open} cases still in progress after the drain (not a failure)"
        ));
    }
    let (histories, mut verdicts) = session.check(&outcome.acknowledged).await?;
    let agents = watched
        .map(|watched| watched.finish(&session, &histories, Some(&fleet.fix_log), &mut verdicts));
    let mut dispatch = report::dispatch_report(&histories, session.started_at);
    dispatch.server_latency = readings
        .as_ref()
        .and_then(|readings| readings.between(0.0, f64::INFINITY))
        .and_then(|histogram| report::ServerLatency::of(&histogram));
    if !steps.is_empty() {
        dispatch.storm = Some(report::storm_report(
            &histories,
            &steps,
            outcome.started_at,
            readings.as_ref(),
        ));
    }
    let parts = ReportParts {
        agents,
        fleet: Some(fleet_json(&fleet, &session.recorder, ran_s)),
        requests: Some(json!({
            "rate": requests_spec.rate, "steps": requests_spec.steps, "planned": requests_spec.planned(),
            "max_retries": requests_spec.max_retries, "acknowledged": outcome.acknowledged.len(),
            "sent_s": outcome.elapsed.as_secs_f64(), "scenario": scenario,
        })),
        dispatch: Some(dispatch),
        verdicts,
        ..ReportParts::default()
    };
    session.finish(format!("scenario {file}"), parts).await
}

async fn run_agents(cli: &Cli, args: &AgentsArgs) -> anyhow::Result<Outcome> {
    anyhow::ensure!(args.agents > 0, "--agents must be positive");
    anyhow::ensure!(args.rate >= 0.0, "--rate must not be negative");
    let session = Session::open(cli, None).await?;
    let watching = Watching::start(&session, args.agents, !args.allow_missed).await?;
    let duration = Duration::from_secs(args.duration_s);
    let requests_spec = (args.rate > 0.0).then(|| RequestsSpec {
        rate: args.rate,
        steps: Vec::new(),
        duration: Some(duration),
        count: None,
        max_retries: 3,
        city: City::default(),
        seed: session.seed,
        run_tag: session.run_tag.clone(),
    });
    let acknowledged = match &requests_spec {
        Some(spec) => {
            let outcome = requests::run(
                &session.api,
                spec,
                &session.recorder,
                &session.console,
                &session.interrupted,
            )
            .await;
            match outcome {
                Ok(outcome) => {
                    session
                        .settle(WAITING_FOR_SERVER, Duration::from_secs(args.drain_s))
                        .await?;
                    outcome.acknowledged
                }
                Err(error) => {
                    watching.stop().await;
                    return Err(error);
                }
            }
        }
        None => {
            let bar = session.console.timer(duration, "listening");
            let started = Instant::now();
            while started.elapsed() < duration && !session.interrupted.is_cancelled() {
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!(
                    "{} agents connected",
                    watching.subscribers.connected()
                ));
                sleep_or_interrupt(&session, Duration::from_millis(500)).await;
            }
            bar.finish_and_clear();
            Vec::new()
        }
    };
    // Let the last events reach everybody before the subscribers stop.
    sleep_or_interrupt(&session, agents::DELIVERY_GRACE).await;
    let watched = watching.stop().await;
    let (histories, mut verdicts) = session.check(&acknowledged).await?;
    let agents = watched.finish(&session, &histories, None, &mut verdicts);
    let parts = ReportParts {
        agents: Some(agents),
        requests: requests_spec.as_ref().map(|spec| {
            json!({
                "rate": spec.rate, "planned": spec.planned(), "max_retries": spec.max_retries,
                "acknowledged": acknowledged.len(),
            })
        }),
        dispatch: (!histories.is_empty())
            .then(|| report::dispatch_report(&histories, session.started_at)),
        verdicts,
        ..ReportParts::default()
    };
    session
        .finish(
            format!(
                "agents --agents {} --rate {} --duration-s {}",
                args.agents, args.rate, args.duration_s
            ),
            parts,
        )
        .await
}
