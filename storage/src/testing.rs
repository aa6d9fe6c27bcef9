//! A fresh, empty store per test, on either backend (feature `testing`).
//!
//! SQLite gets a file in a temporary directory. PostgreSQL gets its own schema inside the
//! database named by `DATABASE_URL`, so tests run in parallel on one server.
//!
//! A test that needs a service fails when its URL is missing (`DATABASE_URL` for
//! PostgreSQL, `REDIS_URL` for Redis), saying so: it never passes without having run.
//! `scripts/test` provides both. To run without them, leave those tests out by name: every
//! PostgreSQL test has `postgres` in its name (`name::postgres` from [`backend_test!`]) and
//! every Redis test `redis`, so `cargo test -- --skip postgres --skip redis` runs the rest
//! and counts the others as filtered out.

use std::sync::Arc;

use domain::ports::Store;

use crate::{PgOptions, PgStore, SqliteOptions, SqliteStore};

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh schema in the PostgreSQL database of `DATABASE_URL`.
    Postgres,
}

/// A store made for one test; call [`TestDatabase::cleanup`] at the end.
pub struct TestDatabase {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The concrete SQLite store, when the backend is SQLite.
    pub sqlite: Option<SqliteStore>,
    /// The concrete PostgreSQL store, when the backend is PostgreSQL.
    pub postgres: Option<PgStore>,
    /// The URL a server would be started with to reach this database.
    pub url: String,
    /// The PostgreSQL schema, if any.
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The PostgreSQL URL tests use, from `DATABASE_URL`.
///
/// # Panics
/// When `DATABASE_URL` is not set or not a `postgres://` URL: the test fails, naming the
/// variable and how to provide it or leave the test out.
pub fn postgres_url() -> String {
    service_url("DATABASE_URL", "postgres", "PostgreSQL")
}

/// The Redis URL tests use, from `REDIS_URL`.
///
/// # Panics
/// When `REDIS_URL` is not set or not a `redis://` URL, as [`postgres_url`].
pub fn redis_url() -> String {
    service_url("REDIS_URL", "redis", "Redis")
}

/// The URL in `variable`, which must start with `scheme`; otherwise a panic that says how
/// to run the test. The URL itself is never printed (it may hold a password).
fn service_url(variable: &str, scheme: &str, service: &str) -> String {
    let problem = match std::env::var(variable) {
        Ok(url) if url.starts_with(scheme) => return url,
        Ok(url) if url.is_empty() => "is empty".to_owned(),
        Ok(_) => format!("is not a {scheme}:// URL"),
        Err(_) => "is not set".to_owned(),
    };
    panic!(
        "{variable} {problem}, and this test needs {service}.\n\
         Run the tests with `scripts/test` (or `scripts/with-services cargo test ...`), which \
         starts throwaway PostgreSQL and Redis servers and sets DATABASE_URL and REDIS_URL; \
         or set {variable} yourself; or leave out the tests that need the services: \
         `cargo test -- --skip postgres --skip redis` (reported as filtered out)."
    );
}

/// A unique schema name for one test.
pub fn unique_schema() -> String {
    format!("test_{}", uuid::Uuid::now_v7().simple())
}

impl TestDatabase {
    /// A fresh database on `backend`.
    ///
    /// # Panics
    /// When the backend's service is not available (see [`postgres_url`]).
    pub async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("rescue.db");
                let url = format!("sqlite://{}", path.display());
                let store = SqliteStore::connect(&SqliteOptions::new(url.clone()))
                    .await
                    .expect("open SQLite test database");
                TestDatabase {
                    store: Arc::new(store.clone()),
                    sqlite: Some(store),
                    postgres: None,
                    url,
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let base_url = postgres_url();
                let schema = unique_schema();
                let mut options = PgOptions::new(base_url.clone());
                options.schema = Some(schema.clone());
                options.max_connections = 8;
                let store = PgStore::connect(&options)
                    .await
                    .expect("connect to the PostgreSQL test database");
                TestDatabase {
                    store: Arc::new(store.clone()),
                    sqlite: None,
                    postgres: Some(store),
                    url: base_url,
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }

    /// Closes the pools and drops the PostgreSQL schema.
    pub async fn cleanup(self) {
        if let Some(store) = &self.sqlite {
            store.close().await;
        }
        if let (Some(store), Some(schema)) = (&self.postgres, &self.schema) {
            let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(store.raw_pool())
                .await;
            store.close().await;
        }
    }
}

/// Declares a test that runs once per backend, as `name::sqlite` and `name::postgres` (so
/// that `--skip postgres` leaves out the PostgreSQL half). The one way to run a test on both
/// backends, in this crate's tests and in other crates':
///
/// - `backend_test!(name, |db| async move { … })`: the closure gets a fresh
///   [`TestDatabaseHandle`] and must not call `cleanup` itself ([`run_on`]).
/// - `backend_test!(name, run = path::to::runner, body)`: `runner(backend, body).await`
///   instead of `run_on`, for a runner that sets more up around the database (the
///   dispatcher's tests start a server on it).
/// - `backend_test!(name)`: `name(backend).await`, for an `async fn name(backend: Backend)`
///   in the same module.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, run = $run:path, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $run($crate::testing::Backend::Sqlite, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $run($crate::testing::Backend::Postgres, $body).await;
            }
        }
    };
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::testing::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::testing::Backend::Postgres).await;
            }
        }
    };
    ($name:ident, $body:expr) => {
        $crate::backend_test!($name, run = $crate::testing::run_on, $body);
    };
}

/// Runs `body` on a fresh database of `backend` and cleans up after it.
pub async fn run_on<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestDatabaseHandle) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let database = Arc::new(TestDatabase::create(backend).await);
    body(TestDatabaseHandle(database.clone())).await;
    if let Ok(database) = Arc::try_unwrap(database) {
        database.cleanup().await;
    }
}

/// A shared handle on the test's database.
#[derive(Clone)]
pub struct TestDatabaseHandle(pub Arc<TestDatabase>);

impl std::ops::Deref for TestDatabaseHandle {
    type Target = TestDatabase;
    fn deref(&self) -> &TestDatabase {
        &self.0
    }
}
