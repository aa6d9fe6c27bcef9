//! Configuration: `RESCUE_…` environment variables (and command-line flags) over an
//! optional TOML file, over defaults that run on a laptop.
//!
//! Every setting is declared once in [`settings!`]: its type, flag, environment variable,
//! default and the help text `dispatcher serve --help` prints. The TOML file uses the same
//! names as the fields (`listen = "0.0.0.0:8080"`) and refuses unknown keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use serde::Deserialize;

/// Declares the settings: the clap arguments, the TOML file shape and the resolved
/// [`Config`], so that a setting cannot exist in one and be missing in another.
macro_rules! settings {
    ($(
        $field:ident : $ty:ty = $default:expr, env = $env:literal, shown = $shown:literal,
            help = $doc:literal;
    )+) => {
        /// Flags and environment variables of `dispatcher serve`. Every one is optional
        /// here; a missing one comes from the config file, then from the default.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct ServeArgs {
            /// A TOML file with any of the settings below, by field name.
            #[arg(long, env = "RESCUE_CONFIG", value_name = "FILE")]
            pub config: Option<PathBuf>,
            $(
                #[doc = $doc]
                #[arg(long, env = $env, hide_env_values = true, help = concat!($doc, " [default: ", $shown, "]"))]
                pub $field: Option<$ty>,
            )+
        }

        /// The config file: the same settings by field name.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileConfig {
            $( pub $field: Option<$ty>, )+
        }

        /// Settings after resolution.
        #[derive(Debug, Clone)]
        pub struct Settings {
            $( #[doc = $doc] pub $field: $ty, )+
        }

        impl Settings {
            /// Flag or environment variable, else file, else default.
            pub fn resolve(args: ServeArgs, file: FileConfig) -> Settings {
                Settings {
                    $( $field: args.$field.or(file.$field).unwrap_or_else(|| $default), )+
                }
            }
        }
    };
}

settings! {
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080)), env = "RESCUE_LISTEN", shown = "127.0.0.1:8080",
        help = "Address the HTTP API listens on";
    database_url: String = "sqlite://rescue.db".to_owned(), env = "DATABASE_URL", shown = "sqlite://rescue.db",
        help = "Database: `sqlite://rescue.db` (created when missing) or `postgres://user@host/db`";
    redis_url: String = String::new(), env = "REDIS_URL", shown = "unset: in-process bus",
        help = "Redis joining several instances (redis://host:port/); unset for one instance";
    bus_channel: String = "rescue:bus".to_owned(), env = "RESCUE_BUS_CHANNEL", shown = "rescue:bus",
        help = "Redis channel of the bus; instances of one deployment (or one region cell) share it";
    database_schema: String = String::new(), env = "RESCUE_DATABASE_SCHEMA", shown = "public",
        help = "PostgreSQL schema to work in (created when missing); default `public`";
    db_max_connections: u32 = 16, env = "RESCUE_DB_MAX_CONNECTIONS", shown = "16",
        help = "PostgreSQL pool size";
    db_acquire_timeout_ms: u64 = 3000, env = "RESCUE_DB_ACQUIRE_TIMEOUT_MS", shown = "3000",
        help = "Milliseconds a request waits for a database connection before answering 503";
    sqlite_synchronous: String = "full".to_owned(), env = "RESCUE_SQLITE_SYNCHRONOUS", shown = "full",
        help = "SQLite durability: `full` (fsync every commit) or `normal` (fsync at checkpoints)";
    admin_token: String = String::new(), env = "RESCUE_ADMIN_TOKEN", shown = "unset",
        help = "Bootstrap admin bearer token. Without it no admin route can be used";
    secret_key: String = String::new(), env = "RESCUE_SECRET_KEY", shown = "unset",
        help = "Server secret (64 hex characters) signing customer tokens; set the same on every instance";
    secret_key_file: PathBuf = PathBuf::from("rescue.key"), env = "RESCUE_SECRET_KEY_FILE", shown = "rescue.key",
        help = "Where the server secret is kept when RESCUE_SECRET_KEY is unset (created, mode 0600)";
    public_url: String = String::new(), env = "RESCUE_PUBLIC_URL", shown = "http://<listen>",
        help = "Public base URL, used in tracking links; default `http://<listen>`";
    log_format: String = "json".to_owned(), env = "RESCUE_LOG_FORMAT", shown = "json",
        help = "Log format: `json` or `pretty`";
    log: String = "info".to_owned(), env = "RESCUE_LOG", shown = "info",
        help = "Log filter (tracing `EnvFilter` syntax)";
    max_body_bytes: usize = 1024 * 1024, env = "RESCUE_MAX_BODY_BYTES", shown = "1048576",
        help = "Largest accepted request body, in bytes";
    request_timeout_s: u64 = 30, env = "RESCUE_REQUEST_TIMEOUT_S", shown = "30",
        help = "Seconds after which a request is abandoned with 503";
    shutdown_grace_s: u64 = 20, env = "RESCUE_SHUTDOWN_GRACE_S", shown = "20",
        help = "Seconds in-flight requests get to finish after SIGTERM or Ctrl-C";
    session_ttl_s: u64 = 12 * 3600, env = "RESCUE_SESSION_TTL_S", shown = "43200",
        help = "Lifetime of a console session, in seconds";
    idempotency_ttl_s: u64 = 24 * 3600, env = "RESCUE_IDEMPOTENCY_TTL_S", shown = "86400",
        help = "Seconds an Idempotency-Key is remembered";
    app_rate_per_min: u32 = 30, env = "RESCUE_APP_RATE_PER_MIN", shown = "30",
        help = "Cases per minute one unauthenticated app client (by IP address) may create";
    app_rate_burst: u32 = 10, env = "RESCUE_APP_RATE_BURST", shown = "10",
        help = "Burst allowance on top of the app rate";
    login_rate_per_min: u32 = 20, env = "RESCUE_LOGIN_RATE_PER_MIN", shown = "20",
        help = "Login attempts per minute per client IP address";
    trust_forwarded_for: bool = false, env = "RESCUE_TRUST_FORWARDED_FOR", shown = "false",
        help = "Take the client address from X-Forwarded-For (only behind a trusted proxy)";
    jt808_addr: String = "127.0.0.1:6808".to_owned(), env = "RESCUE_JT808_ADDR", shown = "127.0.0.1:6808",
        help = "JT/T 808 terminals connect here (TCP); `off` to disable";
    gt06_addr: String = "127.0.0.1:6806".to_owned(), env = "RESCUE_GT06_ADDR", shown = "127.0.0.1:6806",
        help = "GT06 trackers connect here (TCP); `off` to disable";
    osmand_addr: String = "off".to_owned(), env = "RESCUE_OSMAND_ADDR", shown = "off",
        help = "An extra port serving only the OsmAnd protocol (Traccar Client uses 5055); it is always on the API port at /osmand";
    device_idle_timeout_s: u64 = 180, env = "RESCUE_DEVICE_IDLE_TIMEOUT_S", shown = "180",
        help = "A device connection with no valid frame this long is closed";
    offer_timeout_s: u64 = 45, env = "RESCUE_OFFER_TIMEOUT_S", shown = "45",
        help = "Seconds a provider has to answer an offer before it expires and the next vehicle is offered";
    max_offer_attempts: u32 = 5, env = "RESCUE_MAX_OFFER_ATTEMPTS", shown = "5",
        help = "Offers per dispatch round before the case is escalated to an agent";
    dispatch_radii_km: String = "10,25,50,100".to_owned(), env = "RESCUE_DISPATCH_RADII_KM", shown = "10,25,50,100",
        help = "Search radii in km, widened step by step with each attempt and when nobody is in range";
    dispatch_candidates: usize = 16, env = "RESCUE_DISPATCH_CANDIDATES", shown = "16",
        help = "Nearest vehicles ranked by ETA for each offer";
    fix_max_age_s: u64 = 300, env = "RESCUE_FIX_MAX_AGE_S", shown = "300",
        help = "A vehicle whose last fix is older than this is not offered jobs";
    fix_max_future_s: u64 = 30, env = "RESCUE_FIX_MAX_FUTURE_S", shown = "30",
        help = "Fixes dated further than this in the future are rejected (clock skew allowance)";
    fix_flush_ms: u64 = 250, env = "RESCUE_FIX_FLUSH_MS", shown = "250",
        help = "Latest positions are written to storage in batches this often";
    offer_sweep_ms: u64 = 500, env = "RESCUE_OFFER_SWEEP_MS", shown = "500",
        help = "How often due offers are expired and cascaded";
    dispatch_retry_s: u64 = 10, env = "RESCUE_DISPATCH_RETRY_S", shown = "10",
        help = "A dispatching case left without an offer this long is dispatched again";
    eta_detour_factor: f64 = 1.3, env = "RESCUE_ETA_DETOUR_FACTOR", shown = "1.3",
        help = "Road distance over great-circle distance in the default ETA model";
    eta_speed_urban_kmh: f64 = 30.0, env = "RESCUE_ETA_SPEED_URBAN_KMH", shown = "30",
        help = "Average speed on urban roads in the default ETA model";
    eta_speed_rural_kmh: f64 = 60.0, env = "RESCUE_ETA_SPEED_RURAL_KMH", shown = "60",
        help = "Average speed on rural roads in the default ETA model";
    eta_speed_highway_kmh: f64 = 80.0, env = "RESCUE_ETA_SPEED_HIGHWAY_KMH", shown = "80",
        help = "Average speed towards a highway location in the default ETA model";
    eta_setup_s: u64 = 120, env = "RESCUE_ETA_SETUP_S", shown = "120",
        help = "Seconds added to every ETA for the crew to get going";
    road_network: String = String::new(), env = "RESCUE_ROAD_NETWORK", shown = "unset: straight-line ETAs",
        help = "An OpenStreetMap extract (.osm.pbf): match and promise on road ETAs over it";
    road_profile: String = String::new(), env = "RESCUE_ROAD_PROFILE", shown = "the built-in car profile",
        help = "A car profile (TOML, the shape of roads/profiles/car.toml) instead of the built-in one";
    road_cache_dir: String = String::new(), env = "RESCUE_ROAD_CACHE_DIR", shown = "the system's temporary directory",
        help = "Where the prepared road network is cached, keyed by the extract's and the profile's hash";
    road_snap_max_m: f64 = 200.0, env = "RESCUE_ROAD_SNAP_MAX_M", shown = "200",
        help = "A point farther than this from any drivable road is estimated on the straight line";
    road_candidates: usize = 32, env = "RESCUE_ROAD_CANDIDATES", shown = "32",
        help = "With a road network: nearest vehicles (by straight line) ranked by road ETA for each offer";
    tie_window_s: u64 = 60, env = "RESCUE_TIE_WINDOW_S", shown = "60",
        help = "ETAs within this many seconds (or 10 %) of the best are near-ties, broken by provider record";
    index_rebuild_s: u64 = 60, env = "RESCUE_INDEX_REBUILD_S", shown = "60",
        help = "How often the fleet index is bulk-rebuilt when it has changed";
    trajectory_retention_days: u64 = 180, env = "RESCUE_TRAJECTORY_RETENTION_DAYS", shown = "180",
        help = "Days the assigned vehicle's fixes are kept with a case (the timeline is kept for good)";
    alert_late_departure_s: u64 = 300, env = "RESCUE_ALERT_LATE_DEPARTURE_S", shown = "300",
        help = "late_departure when the vehicle has not left this long after accepting";
    alert_stalled_s: u64 = 300, env = "RESCUE_ALERT_STALLED_S", shown = "300",
        help = "stalled when an en-route vehicle makes no progress this long";
    alert_gps_lost_s: u64 = 180, env = "RESCUE_ALERT_GPS_LOST_S", shown = "180",
        help = "gps_lost when an en-route vehicle sends no fix this long";
    alert_arrival_grace_s: u64 = 60, env = "RESCUE_ALERT_ARRIVAL_GRACE_S", shown = "60",
        help = "arrival_at_risk when the predicted arrival is this much later than promised";
    alert_moving_away_m: u64 = 400, env = "RESCUE_ALERT_MOVING_AWAY_M", shown = "400",
        help = "moving_away when the distance to the customer grew this much within 3 minutes";
    alert_critical_lead_s: u64 = 300, env = "RESCUE_ALERT_CRITICAL_LEAD_S", shown = "300",
        help = "An alert becomes critical when the predicted breach is less than this away";
    alert_tick_s: u64 = 15, env = "RESCUE_ALERT_TICK_S", shown = "15",
        help = "How often the delay rules are evaluated without a new fix (silence, departure)";
    stream_poll_ms: u64 = 200, env = "RESCUE_STREAM_POLL_MS", shown = "200",
        help = "How often the event log is read for the agents' streams (and for webhooks)";
    webhook_allow_loopback: bool = false, env = "RESCUE_WEBHOOK_ALLOW_LOOPBACK", shown = "false",
        help = "Let webhook URLs point at loopback (127.0.0.1, localhost). Local testing only: never in production";
    webhook_timeout_ms: u64 = 10_000, env = "RESCUE_WEBHOOK_TIMEOUT_MS", shown = "10000",
        help = "Milliseconds a provider has to answer one webhook attempt";
    webhook_max_attempts: u32 = 12, env = "RESCUE_WEBHOOK_MAX_ATTEMPTS", shown = "12",
        help = "Attempts per webhook, the first included, before it is dead-lettered";
    webhook_retry_base_ms: u64 = 1_000, env = "RESCUE_WEBHOOK_RETRY_BASE_MS", shown = "1000",
        help = "Ceiling of the first retry delay (doubling, with full jitter), in milliseconds";
    webhook_retry_max_ms: u64 = 60_000, env = "RESCUE_WEBHOOK_RETRY_MAX_MS", shown = "60000",
        help = "Longest single retry delay, in milliseconds";
    webhook_concurrency: usize = 8, env = "RESCUE_WEBHOOK_CONCURRENCY", shown = "8",
        help = "Webhook requests in flight at once per instance";
    webhook_poll_ms: u64 = 1_000, env = "RESCUE_WEBHOOK_POLL_MS", shown = "1000",
        help = "How often the webhook worker looks for due retries when nothing wakes it";
    webhook_case_ttl_s: u64 = 3_600, env = "RESCUE_WEBHOOK_CASE_TTL_S", shown = "3600",
        help = "Seconds a case.* (or offer.withdrawn/expired) webhook is retried before it is dead-lettered";
    webhook_secret_grace_h: u64 = 24, env = "RESCUE_WEBHOOK_SECRET_GRACE_H", shown = "24",
        help = "Hours the previous webhook secret still signs after a rotation";
    diagnosis_max_wait_s: u64 = 300, env = "RESCUE_DIAGNOSIS_MAX_WAIT_S", shown = "300",
        help = "A phone-solvable case no expert has claimed this long is dispatched anyway, with a diagnosis_wait alert";
    diagnosis_claim_timeout_s: u64 = 600, env = "RESCUE_DIAGNOSIS_CLAIM_TIMEOUT_S", shown = "600",
        help = "An expert's claim on a ticket lapses (the ticket returns to the queue) when they report nothing this long";
    diagnosis_sweep_ms: u64 = 1_000, env = "RESCUE_DIAGNOSIS_SWEEP_MS", shown = "1000",
        help = "How often lapsed claims and tickets due for the fallback are looked for";
    phone_pool: String = String::new(), env = "RESCUE_PHONE_POOL", shown = "unset: no masked calls",
        help = "Virtual numbers for masked calls, comma-separated (+8610…,+8610…); each is bound to one case at a time";
    sweep_interval_s: u64 = 60, env = "RESCUE_SWEEP_INTERVAL_S", shown = "60",
        help = "Seconds between housekeeping sweeps (expired sessions and idempotency keys)";
}

/// Parses a listen address setting: `off` is `None`.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
    if text.eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        text.parse().map(Some)
    }
}

/// Parses `RESCUE_DISPATCH_RADII_KM` ("10,25,50") into increasing radii in metres.
pub fn parse_radii_km(text: &str) -> anyhow::Result<Vec<f64>> {
    let radii: Vec<f64> = text
        .split(',')
        .map(|part| part.trim().parse::<f64>().map(|km| km * 1000.0))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            anyhow::anyhow!(
                "RESCUE_DISPATCH_RADII_KM must be comma-separated kilometres, like 10,25,50"
            )
        })?;
    anyhow::ensure!(
        !radii.is_empty()
            && radii.iter().all(|r| *r > 0.0 && r.is_finite())
            && radii.windows(2).all(|w| w[0] < w[1]),
        "RESCUE_DISPATCH_RADII_KM must be increasing positive kilometres"
    );
    Ok(radii)
}

/// Parses `RESCUE_PHONE_POOL` ("+8610…,+8610…"): distinct phone numbers, in order.
pub fn parse_phone_pool(text: &str) -> anyhow::Result<Vec<domain::PhoneNumber>> {
    let mut numbers: Vec<domain::PhoneNumber> = Vec::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let number = domain::PhoneNumber::parse(part).map_err(|error| {
            anyhow::anyhow!(
                "RESCUE_PHONE_POOL: `{part}` is not a phone number: {}",
                error.message
            )
        })?;
        anyhow::ensure!(
            !numbers.contains(&number),
            "RESCUE_PHONE_POOL lists {number} twice"
        );
        numbers.push(number);
    }
    Ok(numbers)
}

/// The storage backend chosen by the database URL's scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `sqlite:` or a plain path.
    Sqlite,
    /// `postgres:` or `postgresql:`.
    Postgres,
}

/// The server's configuration, resolved and checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain settings.
    pub settings: Settings,
    /// The bootstrap admin token, if set.
    pub admin_token: Option<SecretString>,
    /// The server secret given in the environment, if set (else the key file is used).
    pub secret_key: Option<SecretString>,
}

impl Config {
    /// Reads the TOML file named by `args.config` (if any) and resolves every setting.
    pub fn load(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        Config::from_settings(Settings::resolve(args, file))
    }

    /// Checks resolved settings.
    pub fn from_settings(settings: Settings) -> anyhow::Result<Config> {
        anyhow::ensure!(
            settings.log_format == "json" || settings.log_format == "pretty",
            "RESCUE_LOG_FORMAT must be json or pretty, not `{}`",
            settings.log_format
        );
        settings
            .sqlite_synchronous
            .parse::<storage::Synchronous>()
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            settings.max_body_bytes >= 1024,
            "RESCUE_MAX_BODY_BYTES must be at least 1024"
        );
        anyhow::ensure!(
            settings.app_rate_per_min > 0,
            "RESCUE_APP_RATE_PER_MIN must be positive"
        );
        anyhow::ensure!(
            settings.login_rate_per_min > 0,
            "RESCUE_LOGIN_RATE_PER_MIN must be positive"
        );
        parse_radii_km(&settings.dispatch_radii_km)?;
        for (name, value) in [
            ("RESCUE_JT808_ADDR", &settings.jt808_addr),
            ("RESCUE_GT06_ADDR", &settings.gt06_addr),
            ("RESCUE_OSMAND_ADDR", &settings.osmand_addr),
        ] {
            parse_listen(value)
                .map_err(|_| anyhow::anyhow!("{name} must be host:port or `off`, not `{value}`"))?;
        }
        anyhow::ensure!(
            settings.offer_timeout_s >= 1,
            "RESCUE_OFFER_TIMEOUT_S must be at least 1"
        );
        anyhow::ensure!(
            settings.max_offer_attempts >= 1,
            "RESCUE_MAX_OFFER_ATTEMPTS must be at least 1"
        );
        anyhow::ensure!(
            settings.dispatch_candidates >= 1,
            "RESCUE_DISPATCH_CANDIDATES must be at least 1"
        );
        anyhow::ensure!(
            settings.road_candidates >= 1,
            "RESCUE_ROAD_CANDIDATES must be at least 1"
        );
        anyhow::ensure!(
            settings.road_snap_max_m.is_finite() && settings.road_snap_max_m >= 0.0,
            "RESCUE_ROAD_SNAP_MAX_M must be a distance in metres, 0 or more"
        );
        anyhow::ensure!(
            settings.eta_detour_factor >= 1.0 && settings.eta_detour_factor <= 5.0,
            "RESCUE_ETA_DETOUR_FACTOR must be between 1 and 5"
        );
        for (name, speed) in [
            ("RESCUE_ETA_SPEED_URBAN_KMH", settings.eta_speed_urban_kmh),
            ("RESCUE_ETA_SPEED_RURAL_KMH", settings.eta_speed_rural_kmh),
            (
                "RESCUE_ETA_SPEED_HIGHWAY_KMH",
                settings.eta_speed_highway_kmh,
            ),
        ] {
            anyhow::ensure!(
                speed > 1.0 && speed < 200.0,
                "{name} must be between 1 and 200 km/h"
            );
        }
        anyhow::ensure!(
            settings.offer_sweep_ms >= 10,
            "RESCUE_OFFER_SWEEP_MS must be at least 10"
        );
        anyhow::ensure!(
            settings.fix_flush_ms >= 10,
            "RESCUE_FIX_FLUSH_MS must be at least 10"
        );
        anyhow::ensure!(
            (1..=86_400).contains(&settings.diagnosis_max_wait_s),
            "RESCUE_DIAGNOSIS_MAX_WAIT_S must be between 1 and 86400"
        );
        anyhow::ensure!(
            (1..=86_400).contains(&settings.diagnosis_claim_timeout_s),
            "RESCUE_DIAGNOSIS_CLAIM_TIMEOUT_S must be between 1 and 86400"
        );
        anyhow::ensure!(
            settings.diagnosis_sweep_ms >= 10,
            "RESCUE_DIAGNOSIS_SWEEP_MS must be at least 10"
        );
        parse_phone_pool(&settings.phone_pool)?;
        if !settings.secret_key.is_empty() {
            anyhow::ensure!(
                settings.secret_key.len() == 64 && hex::decode(&settings.secret_key).is_ok(),
                "RESCUE_SECRET_KEY must be 64 hexadecimal characters (32 bytes)"
            );
        }
        let admin_token = if settings.admin_token.is_empty() {
            None
        } else {
            anyhow::ensure!(
                settings.admin_token.len() >= 16,
                "RESCUE_ADMIN_TOKEN must be at least 16 characters"
            );
            Some(SecretString::from(settings.admin_token.clone()))
        };
        let secret_key = (!settings.secret_key.is_empty())
            .then(|| SecretString::from(settings.secret_key.clone()));
        let mut settings = settings;
        // The plain copies are not kept: the wrapped ones are the only ones.
        settings.admin_token = String::new();
        settings.secret_key = String::new();
        Ok(Config {
            settings,
            admin_token,
            secret_key,
        })
    }

    /// Defaults for everything, as a laptop run gets them.
    pub fn defaults() -> Config {
        Config::from_settings(Settings::resolve(
            ServeArgs::default(),
            FileConfig::default(),
        ))
        .unwrap_or_else(|error| unreachable!("defaults are valid: {error}"))
    }

    /// Which backend the database URL selects.
    pub fn database_kind(&self) -> DatabaseKind {
        let url = &self.settings.database_url;
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            DatabaseKind::Postgres
        } else {
            DatabaseKind::Sqlite
        }
    }

    /// The public base URL without a trailing slash.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if self.settings.public_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.settings.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// Request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.settings.request_timeout_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: FileConfig =
            toml::from_str("listen = \"0.0.0.0:9000\"\nsession_ttl_s = 60\n").unwrap();
        let args = ServeArgs {
            session_ttl_s: Some(30),
            ..ServeArgs::default()
        };
        let settings = Settings::resolve(args, file);
        assert_eq!(settings.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(settings.session_ttl_s, 30);
        assert_eq!(settings.database_url, "sqlite://rescue.db");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let error = toml::from_str::<FileConfig>("lisen = \"0.0.0.0:9000\"").unwrap_err();
        assert!(error.to_string().contains("lisen"));
    }

    #[test]
    fn the_backend_follows_the_url_scheme() {
        let mut config = Config::defaults();
        assert_eq!(config.database_kind(), DatabaseKind::Sqlite);
        config.settings.database_url = "postgres://localhost/rescue".into();
        assert_eq!(config.database_kind(), DatabaseKind::Postgres);
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_name() {
        let mut settings = Config::defaults().settings;
        settings.secret_key = "abc".into();
        let error = Config::from_settings(settings).unwrap_err().to_string();
        assert!(error.contains("RESCUE_SECRET_KEY"));
        let mut settings = Config::defaults().settings;
        settings.admin_token = "short".into();
        assert!(
            Config::from_settings(settings)
                .unwrap_err()
                .to_string()
                .contains("RESCUE_ADMIN_TOKEN")
        );
    }
}
