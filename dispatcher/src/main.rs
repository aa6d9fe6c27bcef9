//! `dispatcher`: the rescue dispatch server binary.

use clap::{Parser, Subcommand};
use dispatcher::config::{Config, ServeArgs};
use dispatcher::{Application, app, telemetry};

/// Roadside-rescue dispatch server.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API. Every setting can come from a flag, a RESCUE_… environment
    /// variable, or the TOML file given with --config (in that order of precedence).
    Serve {
        #[command(flatten)]
        args: Box<ServeArgs>,
        /// Seed a simulated city (tow companies, trucks, users) and keep it busy: trucks
        /// move, offers are answered, rescue requests arrive. For trying the product out.
        #[arg(long)]
        demo: bool,
        /// Demo: number of simulated trucks.
        #[arg(long, default_value_t = 200, requires = "demo")]
        demo_trucks: usize,
        /// Demo: mean seconds between simulated rescue requests.
        #[arg(long, default_value_t = 15.0, requires = "demo")]
        demo_case_interval_s: f64,
    },
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Road networks.
    Roads {
        #[command(subcommand)]
        command: RoadsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RoadsCommand {
    /// Read and prepare an OpenStreetMap extract into the cache `serve` loads it from, so
    /// that the server starts in seconds.
    Prepare {
        /// The extract (.osm.pbf).
        file: std::path::PathBuf,
        /// A car profile (TOML) instead of the built-in one.
        #[arg(long, env = "RESCUE_ROAD_PROFILE", hide_env_values = true)]
        profile: Option<std::path::PathBuf>,
        /// The cache folder [default: the system's temporary directory, rescue-roads].
        #[arg(long, env = "RESCUE_ROAD_CACHE_DIR", hide_env_values = true)]
        cache_dir: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            args,
            demo,
            demo_trucks,
            demo_case_interval_s,
        } => {
            let config = Config::load(*args)?;
            telemetry::init_logging(&config.settings.log_format, &config.settings.log)?;
            if config.admin_token.is_none() {
                tracing::warn!("RESCUE_ADMIN_TOKEN is not set: no admin route can be used");
            }
            let application = Application::build(config).await?;
            let demo_tasks = if demo {
                anyhow::ensure!(
                    demo_trucks > 0 && demo_case_interval_s > 0.0,
                    "--demo-trucks and --demo-case-interval-s must be positive"
                );
                dispatcher::demo::start(
                    application.state().clone(),
                    demo_trucks,
                    demo_case_interval_s,
                )
                .await?
            } else {
                Vec::new()
            };
            let outcome = application.run_until_stopped(app::shutdown_signal()).await;
            for task in demo_tasks {
                task.abort();
            }
            outcome
        }
        Command::Roads {
            command:
                RoadsCommand::Prepare {
                    file,
                    profile,
                    cache_dir,
                },
        } => {
            telemetry::init_logging("pretty", "info")?;
            let profile = match profile {
                Some(path) => roads::Profile::from_file(&path)?,
                None => roads::Profile::default(),
            };
            let cache = cache_dir.unwrap_or_else(|| std::env::temp_dir().join("rescue-roads"));
            let network = roads::RoadNetwork::load(&file, &profile, Some(&cache))?;
            let stats = network.stats();
            println!(
                "{}: {} routing nodes, {} turns, {} left out of the largest connected part; {:.1} MB in memory; {} in {} ms; cached in {}",
                file.display(),
                stats.edges,
                stats.arcs,
                stats.build.dropped_edges,
                stats.memory_bytes as f64 / 1e6,
                if stats.from_cache {
                    "loaded from the cache"
                } else {
                    "prepared"
                },
                stats.load_ms,
                cache.display(),
            );
            Ok(())
        }
        Command::Openapi => {
            let document = dispatcher::api::openapi();
            println!("{}", document.to_pretty_json()?);
            Ok(())
        }
    }
}
