//! Spawning the real server on port 0 against a fresh database, and talking to it.

use std::sync::Arc;

use dispatcher::Application;
use dispatcher::config::{Config, FileConfig, ServeArgs, Settings};
use domain::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use storage::testing::{Backend, TestDatabase, TestDatabaseHandle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const SECRET_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDatabaseHandle,
    #[allow(dead_code)]
    pub state: dispatcher::api::state::AppState,
    pub jt808: Option<std::net::SocketAddr>,
    pub gt06: Option<std::net::SocketAddr>,
    /// The separate OsmAnd port (`RESCUE_OSMAND_ADDR`).
    pub osmand: Option<std::net::SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    runtime: ServerRuntime,
}

/// The runtime a test server runs on, its own and not the test's: every task the server
/// spawns (HTTP connections, background loops, device listeners, the Redis bus links)
/// lives on it, so shutting it down ends them all at once, as a crash would.
struct ServerRuntime(Option<tokio::runtime::Runtime>);

impl ServerRuntime {
    fn new() -> ServerRuntime {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-server")
            .enable_all()
            .build()
            .expect("server runtime builds");
        ServerRuntime(Some(runtime))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("server runtime is running").handle()
    }

    /// Cancels every task of the server without waiting for any of them.
    fn shut_down(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for ServerRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside the test's async context would panic; this does not.
        self.shut_down();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of a JSON error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }
}

/// Settings every test server uses: port 0, the test database, fixed secrets.
pub fn test_settings(db: &TestDatabase) -> Settings {
    let mut settings = Settings::resolve(ServeArgs::default(), FileConfig::default());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database_url = db.url.clone();
    settings.database_schema = db.schema.clone().unwrap_or_default();
    settings.admin_token = ADMIN_TOKEN.to_owned();
    settings.secret_key = SECRET_KEY.to_owned();
    settings.db_max_connections = 8;
    settings.app_rate_per_min = 10_000;
    settings.app_rate_burst = 10_000;
    settings.login_rate_per_min = 10_000;
    // Device listeners on ephemeral ports, so tests run side by side.
    settings.jt808_addr = "127.0.0.1:0".to_owned();
    settings.gt06_addr = "127.0.0.1:0".to_owned();
    settings.osmand_addr = "127.0.0.1:0".to_owned();
    // Two virtual numbers for masked calls.
    settings.phone_pool = "+861095500001,+861095500002".to_owned();
    settings
}

pub async fn spawn_app(db: TestDatabaseHandle) -> TestApp {
    spawn_app_with(db, |_| {}, Arc::new(domain::SystemClock)).await
}

pub async fn spawn_app_with(
    db: TestDatabaseHandle,
    customize: impl FnOnce(&mut Settings),
    clock: Arc<dyn Clock>,
) -> TestApp {
    let mut settings = test_settings(&db);
    customize(&mut settings);
    let config = Config::from_settings(settings).expect("valid test settings");
    let runtime = ServerRuntime::new();
    // Built on the server's runtime, so its pools, listeners and bus tasks belong to it.
    let application = runtime
        .handle()
        .spawn(Application::build_with_clock(config, clock))
        .await
        .expect("build task")
        .expect("server builds");
    let address = format!("http://{}", application.address());
    let state = application.state().clone();
    let (jt808, gt06) = (application.jt808_address(), application.gt06_address());
    let osmand = application.osmand_address();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let server = runtime
        .handle()
        .spawn(application.run_until_stopped(async move {
            let _ = shutdown_rx.await;
        }));
    TestApp {
        address,
        client: reqwest::Client::builder().build().unwrap(),
        db,
        state,
        jt808,
        gt06,
        osmand,
        shutdown: Some(shutdown_tx),
        server: Some(server),
        runtime,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Creates a provider; returns (id, api key).
    pub async fn create_provider(&self, name: &str) -> (String, String) {
        let reply = self
            .post(
                "/v1/admin/providers",
                Some(ADMIN_TOKEN),
                &json!({"name": name, "service_area": shanghai_area()}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        (
            reply.body["id"].as_str().unwrap().to_owned(),
            reply.body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a user with `role` and logs them in; returns (user json, bearer token).
    pub async fn create_user(&self, username: &str, role: &str) -> (Value, String) {
        let reply = self
            .post(
                "/v1/admin/users",
                Some(ADMIN_TOKEN),
                &json!({"username": username, "password": PASSWORD, "role": role, "skills": ["key_fob"]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let token = self.login(username, PASSWORD).await;
        (reply.body, token)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let reply = self
            .post(
                "/v1/auth/login",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a case from the app; returns the whole response body.
    pub async fn create_case(&self, body: &Value) -> Value {
        let reply = self.post("/v1/cases", None, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }

    /// Waits (up to 10 s) until the case is in `status`; returns it.
    pub async fn wait_for_status(&self, case_id: &str, status: domain::CaseStatus) -> domain::Case {
        let id: domain::CaseId = case_id.parse().expect("case id");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let case = self
                .db
                .store
                .get_case(id)
                .await
                .unwrap()
                .expect("case exists");
            if case.status == status {
                return case;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "case {case_id} stayed `{}` instead of becoming `{status}`",
                case.status
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Creates a case from the app and waits until the matcher has dealt with it (with no
    /// vehicles registered, it escalates).
    pub async fn create_settled_case(&self, body: &Value) -> Value {
        let created = self.create_case(body).await;
        self.wait_for_status(
            created["case"]["id"].as_str().unwrap(),
            domain::CaseStatus::Escalated,
        )
        .await;
        created
    }

    /// Registers an available vehicle for the provider with `api_key` and reports it at
    /// `(lat, lon)` now.
    pub async fn register_vehicle(
        &self,
        api_key: &str,
        vehicle_id: &str,
        capabilities: &[&str],
        lat: f64,
        lon: f64,
    ) {
        let reply = self
            .request(
                Method::PUT,
                &format!("/v1/provider/vehicles/{vehicle_id}"),
                Some(api_key),
                Some(&json!({"capabilities": capabilities, "state": "available"})),
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        self.report_position(api_key, vehicle_id, lat, lon, chrono::Utc::now())
            .await;
    }

    /// Like [`register_vehicle`](Self::register_vehicle) with the fix dated `ts`.
    pub async fn register_vehicle_at(
        &self,
        api_key: &str,
        vehicle_id: &str,
        capabilities: &[&str],
        lat: f64,
        lon: f64,
        ts: chrono::DateTime<chrono::Utc>,
    ) {
        let reply = self
            .request(
                Method::PUT,
                &format!("/v1/provider/vehicles/{vehicle_id}"),
                Some(api_key),
                Some(&json!({"capabilities": capabilities, "state": "available"})),
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.text);
        self.report_position(api_key, vehicle_id, lat, lon, ts)
            .await;
    }

    /// Reports one position.
    pub async fn report_position(
        &self,
        api_key: &str,
        vehicle_id: &str,
        lat: f64,
        lon: f64,
        ts: chrono::DateTime<chrono::Utc>,
    ) {
        let reply = self
            .post(
                "/v1/provider/positions",
                Some(api_key),
                &json!({"fixes": [{"vehicle_id": vehicle_id, "lat": lat, "lon": lon, "ts": ts}]}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["accepted"], 1, "{}", reply.text);
    }

    /// Waits (up to 10 s) for the provider's pending offer on the case; returns its id.
    pub async fn wait_for_offer(&self, api_key: &str, case_id: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let offers = self.get("/v1/provider/offers", Some(api_key)).await;
            if let Some(offer) = offers.body["offers"]
                .as_array()
                .and_then(|offers| offers.iter().find(|offer| offer["case_id"] == case_id))
            {
                return offer["id"].as_str().unwrap().to_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no offer for case {case_id}: {}",
                offers.text
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Asks `probe` every 20 ms until it answers `Some`, for at most 10 s (then panics,
    /// naming `what`). For what the server does just after something the test has already
    /// seen (a counter bumped after a commit), never as a fixed wait.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut pace = tokio::time::interval(std::time::Duration::from_millis(20));
        loop {
            pace.tick().await;
            if let Some(found) = probe().await {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not within 10 s: {what}"
            );
        }
    }

    /// How many cases the store holds (read directly, not through the API).
    pub async fn case_count(&self) -> usize {
        let filter = domain::ports::CaseFilter {
            limit: 10_000,
            ..Default::default()
        };
        self.db.store.list_cases(&filter).await.unwrap().len()
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server ran cleanly");
        }
        self.runtime.shut_down();
    }

    /// Kills the server as a crash would: every task it runs is cancelled where it stands,
    /// with no graceful shutdown, so nothing buffered in memory (positions waiting for the
    /// flush, offers waiting for the expiry sweep) is written on the way out. Its database
    /// stays as the crash left it; start a new server on it with `spawn_app_with`.
    pub fn kill(mut self) {
        self.runtime.shut_down();
        // Dropping the rest (the state, with its connection pools) closes the
        // connections, which the operating system would do for a dead process.
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

pub fn shanghai_area() -> Value {
    json!({"type": "Polygon", "coordinates": [[[121.3,31.0],[121.8,31.0],[121.8,31.4],[121.3,31.4],[121.3,31.0]]]})
}

/// People's Square, where `case_body()` puts the customer.
pub const CUSTOMER: (f64, f64) = (31.2304, 121.4737);

/// A point `km` kilometres north of the customer.
pub fn north_of_customer(km: f64) -> (f64, f64) {
    (CUSTOMER.0 + km / 111.195, CUSTOMER.1)
}

/// A case's timeline as the agent `agent` reads it through the API.
pub async fn timeline(app: &TestApp, agent: &str, case_id: &str) -> Vec<Value> {
    app.get(&format!("/v1/cases/{case_id}/timeline"), Some(agent))
        .await
        .body["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// A valid app case request.
pub fn case_body() -> Value {
    json!({
        "channel": "app",
        "customer": {"name": "李雷", "phone": "+8613800138000", "member_id": "P-001", "plate": "沪B67890"},
        "location": {"lat": 31.2304, "lon": 121.4737, "crs": "wgs84", "address": "人民广场", "road_kind": "urban"},
        "fault": {"category": "battery", "symptoms": ["no_crank"], "description": "clicks, no start"},
        "service": "jump_start"
    })
}

/// Runs `body` against a fresh server on each backend: `api_test!(name, |app| async move { … })`
/// is `storage::backend_test!` with [`run_api_test`] as the runner (`name::sqlite`,
/// `name::postgres`).
#[macro_export]
macro_rules! api_test {
    ($name:ident, $body:expr) => {
        storage::backend_test!($name, run = $crate::helpers::run_api_test, $body);
    };
}

pub async fn run_api_test<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = TestApp>,
{
    storage::testing::run_on(backend, |db| async move {
        let app = spawn_app(db).await;
        let app = body(app).await;
        app.stop().await;
    })
    .await;
}
