//! The command line: global options (where the server is, how to start it, the seed, the
//! report directory) and one subcommand per kind of load.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Fleet simulator and load driver for the rescue dispatch server.
///
/// Talks to a running server only through its public HTTP API, like real clients: tow
/// companies reporting positions and answering offers, drivers asking for help, agents
/// reading timelines and watching the live feed (GET /v1/stream). Every run is bounded in count and time, shows a progress bar on a
/// terminal, ends with a report (JSON, Markdown, SVG charts) and checks the server's
/// guarantees (no double-booked truck, every acknowledged request exists exactly once in a
/// recorded state, every offer expires). Exit status: 0 when every invariant held, 1 when
/// one was violated, 2 when the run could not be carried out.
#[derive(Debug, Parser)]
#[command(name = "load-tests", version, propagate_version = true)]
pub struct Cli {
    /// Options of every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options of every subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Base URL of the server. Only loopback addresses (127.0.0.0/8, ::1, localhost) are
    /// accepted. Ignored with --spawn-server.
    #[arg(
        long,
        global = true,
        env = "LOAD_TESTS_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,

    /// The server's bootstrap admin token (creates providers and the agent that reads the
    /// results back). With --spawn-server a random one is generated unless given.
    #[arg(
        long,
        global = true,
        env = "RESCUE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// The server's JT/T 808 port, for trucks reporting as terminals (--jt808-share). With
    /// --spawn-server the spawned server's own port is used.
    #[arg(
        long,
        global = true,
        value_name = "ADDR",
        default_value = "127.0.0.1:6808"
    )]
    pub jt808_addr: std::net::SocketAddr,

    /// Seed of every random choice (paths, requests, answers); same seed, same run.
    #[arg(long, global = true)]
    pub seed: Option<u64>,

    /// Directory the report is written into (created; existing report files replaced).
    #[arg(long, global = true, value_name = "DIR", default_value = "load-report")]
    pub report: PathBuf,

    /// Start this `dispatcher` binary (`serve`) on a free loopback port, with SQLite in a
    /// temporary directory unless --server-env DATABASE_URL=… says otherwise, and stop it
    /// at the end. Its log goes to DIR/server.log.
    #[arg(long, global = true, value_name = "PATH")]
    pub spawn_server: Option<PathBuf>,

    /// Environment of the spawned server, e.g. DATABASE_URL=postgres://…,
    /// RESCUE_DATABASE_SCHEMA=loadtest_1, RESCUE_OFFER_TIMEOUT_S=10 (repeatable).
    #[arg(long = "server-env", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub server_env: Vec<(String, String)>,

    /// Process id of a server started elsewhere, to record its memory and CPU time.
    #[arg(long, global = true, value_name = "PID")]
    pub server_pid: Option<u32>,
}

/// The kinds of load.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Simulated tow companies: trucks driving around the city reporting positions in
    /// batches of 100, dispatchers polling offers and answering them (after a few seconds;
    /// some declines, some silences), accepted jobs driven to completion.
    Fleet(FleetArgs),
    /// A stream of rescue requests from the app at a chosen rate, with a realistic mix of
    /// services and faults, idempotency keys and retries.
    Requests(RequestsArgs),
    /// Maximum-rate position ingest through POST /v1/provider/positions over keep-alive
    /// connections: fixes/s accepted, request latency, errors.
    Positions(PositionsArgs),
    /// Agents watching the live feed (GET /v1/stream, Server-Sent Events): SSE event
    /// latency, reconnects, missed events.
    ///
    /// K console users (role agent) created through the admin API, each subscribed to
    /// GET /v1/stream for the whole run, reconnecting with Last-Event-ID. Measures the SSE event latency (time read −
    /// the event's server timestamp `at`; p50/p90/p99/max, alert_raised and others, alerts
    /// by kind), counts reconnects and gaps in the ids, and fails the run when a subscriber
    /// misses an event or never connects. Events come from a request stream it sends
    /// itself (--rate; without a fleet the cases escalate, raising no_vehicle alerts) or,
    /// with --rate 0, from whatever else loads the server. For fix → alert latency, run a
    /// scenario with an [agents] section and misbehaving trucks
    /// (load-tests/scenarios/agents-100.toml).
    Agents(AgentsArgs),
    /// Fleet, requests and optionally agents together, as described in a TOML file (seed,
    /// server settings, fleet and misbehaving trucks, request rate, agents on the stream,
    /// duration): a reproducible run.
    Scenario(ScenarioArgs),
}

/// `agents`.
#[derive(Debug, Clone, Args)]
pub struct AgentsArgs {
    /// Agents subscribed to the stream (each its own user and connection).
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Seconds of listening (and of requests, with --rate).
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
    /// Rescue requests per second sent meanwhile so that there are events; 0 to only
    /// listen.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// After the last request, wait up to this many seconds for the cases to leave
    /// `new`/`dispatching` (their events are measured too).
    #[arg(long, default_value_t = 15)]
    pub drain_s: u64,
    /// Report missed events and streams that never connected, but do not fail the run.
    #[arg(long)]
    pub allow_missed: bool,
}

/// `fleet`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Trucks.
    #[arg(long, default_value_t = 10_000)]
    pub vehicles: usize,
    /// Tow companies owning them.
    #[arg(long, default_value_t = 20)]
    pub providers: usize,
    /// Seconds between two position reports of a truck.
    #[arg(long, default_value_t = 5.0)]
    pub interval_s: f64,
    /// Share of the trucks (0–1) that report as JT/T 808 terminals over TCP, one
    /// connection each, instead of in HTTP batches.
    #[arg(long, default_value_t = 0.0)]
    pub jt808_share: f64,
    /// How long the fleet runs, seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
    /// How the providers' dispatchers answer offers.
    #[command(flatten)]
    pub behaviour: BehaviourArgs,
}

/// How the providers' dispatchers answer offers.
#[derive(Debug, Clone, Args)]
pub struct BehaviourArgs {
    /// Share of offers accepted.
    #[arg(long, default_value_t = 0.75)]
    pub accept: f64,
    /// Share of offers declined (the rest is never answered and expires).
    #[arg(long, default_value_t = 0.15)]
    pub decline: f64,
    /// Answer delay in seconds: MIN,MEDIAN,MAX of a log-normal spread.
    #[arg(long, value_name = "MIN,MEDIAN,MAX", default_value = "1,4,20", value_parser = parse_three)]
    pub answer_delay_s: [f64; 3],
    /// Seconds between job steps (accepted → en route → on scene → completed): MIN,MAX.
    #[arg(long, value_name = "MIN,MAX", default_value = "2,10", value_parser = parse_two)]
    pub job_step_s: [f64; 2],
    /// How often each provider polls its offers, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
}

/// `requests`.
#[derive(Debug, Clone, Args)]
pub struct RequestsArgs {
    /// Mean requests per second (Poisson arrivals).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Send for this many seconds …
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// … or this many requests, whichever ends first (default: 60 s).
    #[arg(long)]
    pub count: Option<u64>,
    /// Attempts after the first when no answer (or 429/503) came back; same key, same body.
    #[arg(long, default_value_t = 3)]
    pub max_retries: u32,
    /// After the last request, wait up to this many seconds for the cases to leave
    /// `new`/`dispatching` before checking.
    #[arg(long, default_value_t = 15)]
    pub drain_s: u64,
}

/// `positions`.
#[derive(Debug, Clone, Args)]
pub struct PositionsArgs {
    /// Vehicles.
    #[arg(long, default_value_t = 10_000)]
    pub vehicles: usize,
    /// Providers owning them.
    #[arg(long, default_value_t = 10)]
    pub providers: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Fixes per request body.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    /// Seconds at the start left out of the headline figures.
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
}

/// `scenario`.
#[derive(Debug, Clone, Args)]
pub struct ScenarioArgs {
    /// The scenario file (TOML); see load-tests/scenarios/ for examples.
    pub file: PathBuf,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("`{key}` is not an environment variable name"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

fn parse_numbers<const N: usize>(text: &str) -> Result<[f64; N], String> {
    let numbers: Vec<f64> = text
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<f64>()
                .map_err(|_| format!("`{part}` is not a number"))
        })
        .collect::<Result<_, _>>()?;
    numbers
        .try_into()
        .map_err(|_| format!("expected {N} comma-separated numbers, got `{text}`"))
}

fn parse_three(text: &str) -> Result<[f64; 3], String> {
    parse_numbers::<3>(text)
}

fn parse_two(text: &str) -> Result<[f64; 2], String> {
    parse_numbers::<2>(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_after_the_subcommand_too() {
        let cli = Cli::try_parse_from([
            "load-tests",
            "requests",
            "--rate",
            "50",
            "--count",
            "10",
            "--seed",
            "3",
            "--server-env",
            "RESCUE_OFFER_TIMEOUT_S=5",
        ])
        .unwrap();
        assert_eq!(cli.global.seed, Some(3));
        assert_eq!(
            cli.global.server_env,
            vec![("RESCUE_OFFER_TIMEOUT_S".to_owned(), "5".to_owned())]
        );
        let Command::Requests(args) = cli.command else {
            panic!("requests")
        };
        assert_eq!((args.rate, args.count), (50.0, Some(10)));
    }

    #[test]
    fn agents_take_their_count_and_rate() {
        let cli =
            Cli::try_parse_from(["load-tests", "agents", "--agents", "5", "--rate", "0"]).unwrap();
        let Command::Agents(args) = cli.command else {
            panic!("agents")
        };
        assert_eq!((args.agents, args.rate, args.duration_s), (5, 0.0, 60));
        assert!(!args.allow_missed);
    }

    #[test]
    fn malformed_lists_and_variables_are_refused() {
        assert!(parse_three("1,2").is_err());
        assert_eq!(parse_two("0.5, 3").unwrap(), [0.5, 3.0]);
        assert!(parse_key_value("NOEQUALS").is_err());
        assert!(parse_key_value("BAD-NAME=1").is_err());
        assert_eq!(
            parse_key_value("A=b=c").unwrap(),
            ("A".to_owned(), "b=c".to_owned())
        );
    }
}
