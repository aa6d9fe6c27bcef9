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
        Command::Openapi => {
            let document = dispatcher::api::openapi();
            println!("{}", document.to_pretty_json()?);
            Ok(())
        }
    }
}
