//! Startup: configuration → storage → state → router → listener, and the background
//! loops. Tests build the same [`Application`] on port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::Clock;
use domain::ports::Store;
use tokio::net::TcpListener;

use crate::api;
use crate::api::state::{AppState, KeyCache, Limits};
use crate::bus::Bus;
use crate::config::{Config, DatabaseKind, parse_listen, parse_radii_km};
use crate::matching::{EtaModel, ProviderScores, RoadNetworkEta, StraightLineEta};
use crate::runtime;
use crate::security::Keys;
use crate::services::alerts::Alerts;
use crate::services::calls::{Calls, PoolPhoneBridge};
use crate::services::cascade::{DispatchSettings, OfferCascade};
use crate::services::cases::Cases;
use crate::services::diagnosis::DiagnosisDesk;
use crate::services::fleet_ingest::FleetRegistry;
use crate::services::fleet_ingest::devices::DeviceIntake;
use crate::services::intake::Intake;
use crate::services::tracking::{Tracking, tracker_config};
use crate::services::webhook_outbox::{WebhookRouter, WebhookSettings, build_worker};
use crate::stream::EventTail;
use crate::telemetry;

/// A built server, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    address: SocketAddr,
    devices: DeviceListeners,
    webhook_worker: Arc<provider_adapters::webhook::WebhookWorker>,
}

/// The device protocol listeners that are switched on, bound at build time so their
/// ports are known before serving (tests bind port 0).
#[derive(Default)]
struct DeviceListeners {
    jt808: Option<TcpListener>,
    gt06: Option<TcpListener>,
    osmand: Option<TcpListener>,
}

async fn bind_optional(setting: &str, name: &str) -> anyhow::Result<Option<TcpListener>> {
    match parse_listen(setting).map_err(|_| anyhow::anyhow!("{name}: not an address: {setting}"))? {
        None => Ok(None),
        Some(address) => Ok(Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("binding {name} {address}"))?,
        )),
    }
}

/// Opens the database the configuration names: SQLite or PostgreSQL by URL scheme.
pub async fn connect_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let settings = &config.settings;
    let acquire_timeout = Duration::from_millis(settings.db_acquire_timeout_ms);
    match config.database_kind() {
        DatabaseKind::Sqlite => {
            let mut options = storage::SqliteOptions::new(settings.database_url.clone());
            options.synchronous = settings
                .sqlite_synchronous
                .parse()
                .map_err(anyhow::Error::msg)?;
            options.acquire_timeout = acquire_timeout;
            let store = storage::SqliteStore::connect(&options)
                .await
                .with_context(|| format!("opening SQLite database {}", settings.database_url))?;
            Ok(Arc::new(store))
        }
        DatabaseKind::Postgres => {
            let mut options = storage::PgOptions::new(settings.database_url.clone());
            options.max_connections = settings.db_max_connections;
            options.acquire_timeout = acquire_timeout;
            options.schema =
                (!settings.database_schema.is_empty()).then(|| settings.database_schema.clone());
            let store = storage::PgStore::connect(&options)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Arc::new(store))
        }
    }
}

impl Application {
    /// Builds the server on the real clock.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Arc::new(domain::SystemClock)).await
    }

    /// Builds the server with an injected clock (tests drive time by hand).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        let store = connect_store(&config).await?;
        let keys = Keys::load(config.secret_key.as_ref(), &config.settings.secret_key_file)?;
        let listener = TcpListener::bind(config.settings.listen)
            .await
            .with_context(|| format!("binding {}", config.settings.listen))?;
        let address = listener.local_addr()?;
        let public_url: Arc<str> = config.public_url(address).into();
        let settings = &config.settings;
        let bus = Arc::new(match settings.redis_url.as_str() {
            "" => Bus::in_process(),
            url => Bus::redis(url, &settings.bus_channel)
                .await
                .context("connecting the Redis bus")?,
        });
        let registry = Arc::new(
            FleetRegistry::load(store.clone(), settings.fix_max_future_s, bus.clone())
                .await
                .context("loading the fleet")?,
        );
        let straight_line = StraightLineEta {
            detour_factor: settings.eta_detour_factor,
            urban_kmh: settings.eta_speed_urban_kmh,
            rural_kmh: settings.eta_speed_rural_kmh,
            highway_kmh: settings.eta_speed_highway_kmh,
            setup_s: u32::try_from(settings.eta_setup_s).unwrap_or(u32::MAX),
        };
        let road_network = load_road_network(settings).await?;
        let (eta, candidates): (Arc<dyn EtaModel>, usize) = match &road_network {
            None => (Arc::new(straight_line), settings.dispatch_candidates),
            Some(network) => (
                Arc::new(RoadNetworkEta {
                    network: network.clone(),
                    fallback: straight_line,
                }),
                settings.road_candidates,
            ),
        };
        let scores = Arc::new(ProviderScores::default());
        let to_u32 = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        let dispatch_settings = DispatchSettings {
            radii_m: parse_radii_km(&settings.dispatch_radii_km)?,
            candidates,
            max_attempts: settings.max_offer_attempts,
            offer_timeout_s: to_u32(settings.offer_timeout_s),
            fix_max_age_s: to_u32(settings.fix_max_age_s),
            tie_window_s: to_u32(settings.tie_window_s),
            retry_after_s: to_u32(settings.dispatch_retry_s),
        };
        let policy = diagnosis_core::QueuePolicy {
            claim_timeout_s: to_u32(settings.diagnosis_claim_timeout_s),
            max_wait_s: to_u32(settings.diagnosis_max_wait_s),
            ..diagnosis_core::QueuePolicy::default()
        };
        // The services, each after the ones it uses (see `services`).
        let alerts = Arc::new(Alerts::new(store.clone(), clock.clone()));
        let cascade = Arc::new(OfferCascade::new(
            store.clone(),
            registry.clone(),
            eta,
            scores,
            clock.clone(),
            dispatch_settings,
            alerts.clone(),
        ));
        let desk = Arc::new(
            DiagnosisDesk::load(store.clone(), clock.clone(), policy, cascade.clone())
                .await
                .context("loading the triage rules")?,
        );
        let intake = Arc::new(Intake::new(
            store.clone(),
            clock.clone(),
            desk.clone(),
            cascade.clone(),
        ));
        let tracking = Arc::new(Tracking::new(
            store.clone(),
            clock.clone(),
            registry.clone(),
            alerts.clone(),
            tracker_config(settings),
        ));
        tracking.resume().await.context("resuming tracking")?;
        let bridge = Arc::new(PoolPhoneBridge::new(
            store.clone(),
            clock.clone(),
            crate::config::parse_phone_pool(&settings.phone_pool)?,
        ));
        let calls = Arc::new(Calls::new(store.clone(), bridge));
        let cases = Arc::new(Cases::new(store.clone(), clock.clone(), tracking.clone()));
        let devices = Arc::new(DeviceIntake::new(registry.clone(), clock.clone()));
        let events = Arc::new(
            EventTail::start_at_end(store.clone())
                .await
                .context("reading the event log")?,
        );
        let webhooks = Arc::new(WebhookSettings::from_settings(settings));
        let keys = Arc::new(keys);
        let webhook_worker = build_worker(store.clone(), keys.clone(), clock.clone(), &webhooks)
            .context("building the webhook client")?;
        let state = AppState {
            store,
            clock,
            limits: Arc::new(Limits::new(&config)),
            config: Arc::new(config),
            keys,
            public_url,
            metrics: telemetry::prometheus(),
            provider_keys: Arc::new(KeyCache::default()),
            webhooks,
            events,
            bus,
            intake,
            cascade,
            registry,
            devices,
            tracking,
            diagnosis: desk,
            alerts,
            calls,
            cases,
            road_network,
        };
        let devices = DeviceListeners {
            jt808: bind_optional(&state.config.settings.jt808_addr, "RESCUE_JT808_ADDR").await?,
            gt06: bind_optional(&state.config.settings.gt06_addr, "RESCUE_GT06_ADDR").await?,
            osmand: bind_optional(&state.config.settings.osmand_addr, "RESCUE_OSMAND_ADDR").await?,
        };
        Ok(Application {
            listener,
            state,
            address,
            devices,
            webhook_worker,
        })
    }

    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where JT/T 808 terminals connect, if switched on.
    pub fn jt808_address(&self) -> Option<SocketAddr> {
        self.devices
            .jt808
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Where GT06 trackers connect, if switched on.
    pub fn gt06_address(&self) -> Option<SocketAddr> {
        self.devices
            .gt06
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The extra OsmAnd port, if switched on.
    pub fn osmand_address(&self) -> Option<SocketAddr> {
        self.devices
            .osmand
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The application state (tests reach the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then gives in-flight requests the configured
    /// grace period to finish.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = &self.state;
        let settings = &state.config.settings;
        let grace = Duration::from_secs(settings.shutdown_grace_s);
        let duties = runtime::Duties {
            store: state.store.clone(),
            clock: state.clock.clone(),
            intake: state.intake.clone(),
            cascade: state.cascade.clone(),
            diagnosis: state.diagnosis.clone(),
            registry: state.registry.clone(),
            tracking: state.tracking.clone(),
            limits: state.limits.clone(),
        };
        let mut background = runtime::spawn_all(&duties, settings);
        background.push(
            state
                .events
                .spawn(Duration::from_millis(settings.stream_poll_ms.max(10))),
        );
        background.push(state.registry.follow());
        background.extend(state.tracking.follow(&state.events));
        background.push(
            WebhookRouter::new(
                state.store.clone(),
                state.clock.clone(),
                state.registry.clone(),
                (*state.webhooks).clone(),
                self.webhook_worker.waker(),
            )
            .spawn(),
        );
        let router = api::router(self.state.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = self.webhook_worker.clone();
        let mut worker_stop = stop_rx.clone();
        background.push(tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = worker_stop.wait_for(|stopped| *stopped).await;
                })
                .await;
        }));
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        self.spawn_device_listeners(&stop_rx, &mut background);
        let mut serve_stop = stop_rx.clone();
        let serve = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = serve_stop.wait_for(|stopped| *stopped).await;
            tracing::info!("shutting down: no new connections, finishing in-flight requests");
        });
        tracing::info!(
            address = %self.address,
            storage = self.state.store.backend(),
            bus = self.state.bus.backend(),
            "serving"
        );
        let mut grace_stop = stop_rx;
        let outcome = tokio::select! {
            result = serve => result.context("serving HTTP"),
            () = async move {
                let _ = grace_stop.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_s = grace.as_secs(), "in-flight requests did not finish in time");
                Ok(())
            }
        };
        for task in background {
            task.abort();
        }
        if let Err(error) = self.state.registry.flush().await {
            tracing::warn!(error = %error, "could not write the last positions at shutdown");
        }
        tracing::info!("stopped");
        outcome
    }
}

impl Application {
    fn spawn_device_listeners(
        &mut self,
        stop: &tokio::sync::watch::Receiver<bool>,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) {
        let settings = &self.state.config.settings;
        let gateway: Arc<dyn provider_adapters::DeviceGateway> = self.state.devices.clone();
        let idle = Duration::from_secs(settings.device_idle_timeout_s.max(1));
        let stopped = |stop: &tokio::sync::watch::Receiver<bool>| {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }
        };
        if let Some(listener) = self.devices.jt808.take() {
            let mut config = provider_adapters::jt808::Jt808Config::new(
                self.state.keys.derive("jt808-auth").to_vec(),
            );
            config.idle_timeout = idle;
            tracing::info!(address = ?listener.local_addr().ok(), "JT/T 808 listener on");
            tasks.push(tokio::spawn(provider_adapters::jt808::serve_jt808(
                listener,
                gateway.clone(),
                config,
                stopped(stop),
            )));
        }
        if let Some(listener) = self.devices.gt06.take() {
            let config = provider_adapters::gt06::Gt06Config {
                idle_timeout: idle,
                ..Default::default()
            };
            tracing::info!(address = ?listener.local_addr().ok(), "GT06 listener on");
            tasks.push(tokio::spawn(provider_adapters::gt06::serve_gt06(
                listener,
                gateway,
                config,
                stopped(stop),
            )));
        }
        if let Some(listener) = self.devices.osmand.take() {
            let router = api::osmand_router(self.state.clone());
            tracing::info!(address = ?listener.local_addr().ok(), "OsmAnd listener on");
            let shutdown = stopped(stop);
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await;
                if let Err(error) = served {
                    tracing::error!(error = %error, "the OsmAnd listener failed");
                }
            }));
        }
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

/// The road network `RESCUE_ROAD_NETWORK` names, loaded (from the prepared cache when it
/// holds this extract and profile, otherwise read and prepared, then cached); `None`
/// without one. A missing or bad extract or profile stops start-up with its error.
pub async fn load_road_network(
    settings: &crate::config::Settings,
) -> anyhow::Result<Option<Arc<roads::RoadNetwork>>> {
    if settings.road_network.is_empty() {
        return Ok(None);
    }
    let path = std::path::PathBuf::from(&settings.road_network);
    let profile = match settings.road_profile.as_str() {
        "" => roads::Profile::default(),
        file => roads::Profile::from_file(std::path::Path::new(file))?,
    };
    let cache = road_cache_dir(settings);
    let snap_max_m = settings.road_snap_max_m;
    let network = tokio::task::spawn_blocking(move || {
        roads::RoadNetwork::load(&path, &profile, Some(&cache))
    })
    .await
    .context("the road network loader failed")??
    .with_snap_max_m(snap_max_m);
    // The recorder must exist before the gauge is set, or the value is lost.
    let _ = crate::telemetry::prometheus();
    metrics::gauge!(crate::telemetry::ROAD_NETWORK_BYTES).set(network.stats().memory_bytes as f64);
    Ok(Some(Arc::new(network)))
}

/// Where prepared road networks are cached: `RESCUE_ROAD_CACHE_DIR`, or a folder in the
/// system's temporary directory.
pub fn road_cache_dir(settings: &crate::config::Settings) -> std::path::PathBuf {
    match settings.road_cache_dir.as_str() {
        "" => std::env::temp_dir().join("rescue-roads"),
        dir => std::path::PathBuf::from(dir),
    }
}
