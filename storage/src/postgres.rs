//! PostgreSQL: the source of truth when several server instances run together.

use std::str::FromStr;
use std::time::Duration;

use domain::ports::StoreError;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::map_sqlx;
use crate::queries::impl_store;
use crate::queries_diagnosis::impl_diagnosis_store;
use crate::queries_dispatch::impl_dispatch_store;
use crate::queries_tracking::impl_tracking_store;
use crate::queries_webhooks::impl_webhook_store;

/// A write transaction of the shared queries.
type Tx<'t> = sqlx::Transaction<'t, sqlx::Postgres>;

/// Connection settings for [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a caller waits for a connection before the store reports itself
    /// unavailable.
    pub acquire_timeout: Duration,
    /// Work inside this schema (created if missing) instead of `public`: tests use one
    /// schema each to share one database.
    pub schema: Option<String>,
}

impl PgOptions {
    /// Defaults for `url`: 16 connections, three seconds of patience, schema `public`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            schema: None,
        }
    }
}

/// The store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections whose commits do not wait for the WAL flush, for position data only
    /// (see [`PgStore::begin_fix_write`]).
    fixes: PgPool,
}

/// Connections of the position pool: position flushes and trajectory points.
const FIX_POOL_CONNECTIONS: u32 = 2;

impl PgStore {
    /// Connects and runs the migrations.
    pub async fn connect(options: &PgOptions) -> Result<Self, StoreError> {
        let mut connect = PgConnectOptions::from_str(&options.url)
            .map_err(map_sqlx)?
            .log_statements(tracing::log::LevelFilter::Debug)
            .application_name("rescue-dispatcher");
        if let Some(schema) = &options.schema {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(StoreError::Internal(
                    format!("invalid schema name `{schema}`").into(),
                ));
            }
            let mut admin = connect.connect().await.map_err(map_sqlx)?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}"
            )))
            .execute(&mut admin)
            .await
            .map_err(map_sqlx)?;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_sqlx)?;
        // Asynchronous commit: the WAL writer flushes within 3 × `wal_writer_delay`
        // (600 ms by default), so a crash of the database loses less than the last second
        // of positions, which is what the fleet's persistence promises, and the position
        // stream neither waits for fsyncs nor holds vehicle row locks through them.
        let fixes = PgPoolOptions::new()
            .max_connections(FIX_POOL_CONNECTIONS)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect.options([("synchronous_commit", "off")]));
        sqlx::migrate!("../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| StoreError::Internal(Box::new(error)))?;
        Ok(Self { pool, fixes })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// A write transaction. `BEGIN` runs in a task of its own: sqlx 0.9 leaves a pooled
    /// connection inside a transaction nothing will end when the future of `begin` is
    /// dropped during its round trip (transact-rs/sqlx#4385), and a request cancelled by
    /// its client or by the request timeout would do exactly that. The next borrower's
    /// statements would then hold their row locks forever.
    async fn begin_write(&self) -> Result<Tx<'_>, StoreError> {
        Self::begin_on(&self.pool).await
    }

    /// A write of position data (trajectory points), committed asynchronously like the
    /// position flushes: see the position pool in [`PgStore::connect`].
    async fn begin_fix_write(&self) -> Result<Tx<'_>, StoreError> {
        Self::begin_on(&self.fixes).await
    }

    async fn begin_on(pool: &PgPool) -> Result<Tx<'static>, StoreError> {
        let pool = pool.clone();
        tokio::spawn(async move { pool.begin().await })
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!("the transaction task failed: {error}"))
            })?
            .map_err(map_sqlx)
    }

    /// A write on a request's critical path. PostgreSQL has no single writer to jump the
    /// queue of: as `begin_write`.
    async fn begin_urgent_write(&self) -> Result<Tx<'_>, StoreError> {
        self.begin_write().await
    }

    /// The pool, for tests that must show what the database itself refuses.
    #[doc(hidden)]
    pub fn raw_pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.pool.close().await;
        self.fixes.close().await;
    }
}

impl PgStore {
    /// Appends an event in one round trip: the bump of the case's sequence (which locks
    /// the case row, as `next_event_seq`) feeds the insert.
    const APPEND_EVENT_SQL: &'static str = "WITH bumped AS (UPDATE cases SET last_event_seq = last_event_seq + 1, updated_at = $2 \
         WHERE id = $1 RETURNING last_event_seq) \
         INSERT INTO case_events (case_id, seq, at, kind, actor, data) \
         SELECT $1, last_event_seq, $2, $3, $4, $5 FROM bumped RETURNING id, seq";

    /// Claims due webhook deliveries under a lease.
    const CLAIM_WEBHOOKS_SQL: &'static str = "UPDATE webhook_deliveries SET claimed_until = $3 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, provider_id, event, case_id, url, body, status, attempts, next_attempt_at, deadline, created_at, delivered_at, dead_lettered_at, dead_letter_reason";

    /// The next ticket for an expert, locked with its case; tickets other experts are
    /// claiming right now are skipped, not waited for.
    const CLAIM_TICKET_SQL: &'static str = "SELECT t.id, t.case_id FROM diagnosis_tickets t JOIN cases c ON c.id = t.case_id \
         WHERE t.outcome IS NULL AND (t.claimed_by IS NULL OR t.claim_expires_at <= $1) \
         AND t.skill IN (SELECT jsonb_array_elements_text($2)) AND t.queued_at > $3 \
         ORDER BY t.priority DESC, t.queued_at ASC, t.id ASC LIMIT 1 FOR UPDATE OF t, c SKIP LOCKED";

    /// Pending offers due for expiry, locking their cases and skipping cases another
    /// instance is working on, so concurrent sweeps share the work without waiting.
    const DUE_OFFERS_SQL: &'static str = "SELECT o.id, o.case_id FROM offers o JOIN cases c ON c.id = o.case_id \
         WHERE o.state = 'pending' AND o.expires_at <= $1 ORDER BY o.expires_at LIMIT $2 \
         FOR UPDATE OF c SKIP LOCKED";

    /// Vehicles whose position one statement updates. The statement holds the row locks
    /// of its vehicles until it commits, and an offer's claim of a truck waits for them:
    /// short statements keep that wait to a few milliseconds.
    const POSITION_CHUNK_ROWS: usize = 500;

    /// Latest positions: one `UPDATE … FROM UNNEST(arrays)` per chunk, in vehicle-id order
    /// (one lock order for every writer, so concurrent flushes cannot deadlock).
    async fn save_last_fixes_impl(
        &self,
        fixes: &[(domain::VehicleId, domain::Fix)],
    ) -> Result<u64, StoreError> {
        let rows = crate::rows::newest_fix_per_vehicle(fixes);
        let mut moved = 0;
        for chunk in rows.chunks(Self::POSITION_CHUNK_ROWS) {
            let mut ids = Vec::with_capacity(chunk.len());
            let (mut lats, mut lons, mut times) = (Vec::new(), Vec::new(), Vec::new());
            let (mut speeds, mut headings, mut accuracies, mut sources) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, fix) in chunk {
                ids.push(*id);
                lats.push(fix.position.lat());
                lons.push(fix.position.lon());
                times.push(domain::time::to_storage_precision(fix.ts));
                speeds.push(fix.speed_kmh);
                headings.push(fix.heading);
                accuracies.push(fix.accuracy_m);
                sources.push(fix.source.as_str());
            }
            moved += sqlx::query(
                "UPDATE vehicles v SET last_lat = u.lat, last_lon = u.lon, last_fix_at = u.ts, last_speed_kmh = u.speed, \
                 last_heading_deg = u.heading, last_accuracy_m = u.accuracy, last_fix_source = u.source \
                 FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::timestamptz[], $5::float8[], $6::float8[], \
                 $7::float8[], $8::text[]) AS u(id, lat, lon, ts, speed, heading, accuracy, source) \
                 WHERE v.id = u.id AND (v.last_fix_at IS NULL OR v.last_fix_at < u.ts)",
            )
            .bind(ids)
            .bind(lats)
            .bind(lons)
            .bind(times)
            .bind(speeds)
            .bind(headings)
            .bind(accuracies)
            .bind(sources)
            .execute(&self.fixes)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
        }
        Ok(moved)
    }
}

impl_store!(PgStore, sqlx::Postgres);
impl_dispatch_store!(PgStore, sqlx::Postgres);
impl_tracking_store!(PgStore, sqlx::Postgres);
impl_webhook_store!(PgStore, sqlx::Postgres);
impl_diagnosis_store!(PgStore, sqlx::Postgres);

impl domain::ports::Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }
}
