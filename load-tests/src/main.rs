//! `load-tests`: a fleet simulator and load driver for the rescue dispatch server.
//!
//! It talks to a running server only through its public HTTP API, as real clients do —
//! tow companies registering trucks, reporting positions and answering offers, drivers
//! asking for help from the app, an agent reading case timelines — and never links the
//! server's crates. It measures what operators care about (fixes/s accepted, dispatch
//! latency from the server's own timelines, time to assignment, errors, server memory and
//! CPU), checks the server's guarantees after every run (no double-booked truck, every
//! acknowledged request exists exactly once in a recorded state, every offer expires) and
//! writes a report: JSON, Markdown and SVG charts.
//!
//! Layout: [`cli`] (options), [`run`] (a run from start to report), [`fleet`], [`requests`]
//! and [`positions`] (the kinds of load), [`agents`] (agents on the live feed, with the
//! [`sse`] parser), [`sim`] and [`mix`] (pure simulation of trucks
//! and requests), [`api`] (the HTTP client), [`history`] and [`invariants`] (what the
//! server recorded and the checks on it), [`stats`], [`report`] and [`svg`] (figures and
//! their presentation), [`server`] (starting the server and sampling `/proc`), [`machine`]
//! (CPU busy, stolen by the hypervisor, and pressure over the run), [`target`]
//! (loopback only), [`scenario`] (TOML files), [`console`] (progress bars), [`rng`]
//! (seeded randomness).

mod agents;
mod api;
mod cli;
mod console;
mod fleet;
mod history;
mod invariants;
mod machine;
mod mix;
mod positions;
mod report;
mod requests;
mod rng;
mod run;
mod sampling;
mod scenario;
mod server;
mod server_metrics;
mod sim;
mod sse;
mod stats;
mod svg;
mod target;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("load-tests: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(run::Outcome::Passed) => ExitCode::SUCCESS,
        Ok(run::Outcome::Violated) => {
            eprintln!("load-tests: an invariant was violated (see the report)");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("load-tests: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
