//! A database that goes away: the routes that need it answer 503 with the JSON error body,
//! `/readyz` fails, and the server recovers by itself when the database returns. The
//! server reaches PostgreSQL through a TCP proxy that the test cuts and restores.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::*;

/// Forwards connections from a local port to `target` until cut.
struct Proxy {
    address: SocketAddr,
    target: SocketAddr,
    tasks: JoinSet<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut proxy = Proxy {
            address,
            target,
            tasks: JoinSet::new(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        self.tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Drops the listener and every forwarded connection: the database is "down".
    async fn cut(&mut self) {
        self.tasks.shutdown().await;
    }

    /// Listens again on the same port.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_503_and_the_server_recovers_on_postgres() {
    storage::testing::run_on(storage::testing::Backend::Postgres, |db| async move {
        let mut url = reqwest::Url::parse(&db.url).unwrap();
        let host = url.host_str().unwrap().to_owned();
        let port = url.port().unwrap_or(5432);
        let target = tokio::net::lookup_host((host.as_str(), port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let mut proxy = Proxy::start(target).await;
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.address.port())).unwrap();
        let proxied = url.to_string();

        let app = spawn_app_with(
            db,
            |settings| {
                settings.database_url = proxied;
                settings.db_acquire_timeout_ms = 1000;
            },
            Arc::new(domain::SystemClock),
        )
        .await;
        assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
        app.create_case(&case_body()).await;

        proxy.cut().await;
        let ready = app.get("/readyz", None).await;
        assert_eq!(
            ready.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            ready.text
        );
        let create = app.post("/v1/cases", None, &case_body()).await;
        assert_eq!(
            (create.status, create.error_code()),
            (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable")
        );
        assert!(create.headers.contains_key("retry-after"));
        // Liveness does not depend on the database.
        assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);

        proxy.restore().await;
        let mut recovered = false;
        for _ in 0..50 {
            if app.get("/readyz", None).await.status == StatusCode::OK {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "readiness came back");
        assert_eq!(
            app.post("/v1/cases", None, &case_body()).await.status,
            StatusCode::CREATED
        );
        assert_eq!(
            app.case_count().await,
            2,
            "the case refused during the outage was not half-written"
        );
        app.stop().await;
        proxy.cut().await;
    })
    .await;
}
