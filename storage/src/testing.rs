//! A fresh, empty store per test, on either backend (feature `testing`).
//!
//! SQLite gets a file in a temporary directory. PostgreSQL gets its own schema inside the
//! database named by `DATABASE_URL`, so tests run in parallel on one server. Without
//! `DATABASE_URL` the PostgreSQL variant of a test is skipped with a message — unless
//! `RESCUE_TEST_REQUIRE_BACKENDS=1` (set by `scripts/test`), which turns the skip into a
//! failure so CI can never pass without having run both backends.

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

/// The PostgreSQL URL tests use, or `None` when the test should be skipped.
///
/// # Panics
/// When `DATABASE_URL` is missing and `RESCUE_TEST_REQUIRE_BACKENDS=1`.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ => {
            if std::env::var("RESCUE_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") {
                panic!(
                    "DATABASE_URL must name a PostgreSQL database: run the tests with scripts/test"
                );
            }
            eprintln!(
                "skipping the PostgreSQL variant: DATABASE_URL is not a postgres:// URL (scripts/test sets it)"
            );
            None
        }
    }
}

/// A unique schema name for one test.
pub fn unique_schema() -> String {
    format!("test_{}", uuid::Uuid::now_v7().simple())
}

impl TestDatabase {
    /// A fresh database on `backend`, or `None` if the backend is not available (see the
    /// module docs).
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("rescue.db");
                let url = format!("sqlite://{}", path.display());
                let store = SqliteStore::connect(&SqliteOptions::new(url.clone()))
                    .await
                    .expect("open SQLite test database");
                Some(TestDatabase {
                    store: Arc::new(store.clone()),
                    sqlite: Some(store),
                    postgres: None,
                    url,
                    schema: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let base_url = postgres_url()?;
                let schema = unique_schema();
                let mut options = PgOptions::new(base_url.clone());
                options.schema = Some(schema.clone());
                options.max_connections = 8;
                let store = PgStore::connect(&options)
                    .await
                    .expect("connect to the PostgreSQL test database");
                Some(TestDatabase {
                    store: Arc::new(store.clone()),
                    sqlite: None,
                    postgres: Some(store),
                    url: base_url,
                    schema: Some(schema),
                    _dir: None,
                })
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

/// Declares a test that runs once per backend: `backend_test!(name, |db| async move { … })`
/// expands to `mod name { sqlite(); postgres(); }`. The closure receives a
/// [`TestDatabase`] and must not call `cleanup` itself.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::testing::run_on($crate::testing::Backend::Sqlite, $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::testing::run_on($crate::testing::Backend::Postgres, $body).await;
            }
        }
    };
}

/// Runs `body` on a fresh database of `backend` and cleans up after it.
pub async fn run_on<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestDatabaseHandle) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(database) = TestDatabase::create(backend).await else {
        return;
    };
    let database = Arc::new(database);
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
