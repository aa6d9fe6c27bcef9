//! SQLite: the embedded default. One file, WAL, a single writer connection (with group
//! commit, see `group_commit`) and a pool of readers.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use domain::ports::StoreError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::backend::{Backend, SqlStore, Transaction};
use crate::error::map_sqlx;
use crate::group_commit::{CommitStats, GroupWriter, WriteTx};
use crate::sql::{Dialect, impl_conn};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync the write-ahead log on every commit: a committed case survives a power cut.
    #[default]
    Full,
    /// fsync only at checkpoints: commits survive a crash of the server, but a power cut
    /// or OS crash can lose the last transactions (never corrupt the file). Faster.
    Normal,
}

impl FromStr for Synchronous {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(format!(
                "unknown synchronous mode `{other}`, expected full or normal"
            )),
        }
    }
}

/// Connection settings for [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `sqlite://path/to/file.db` (created when missing) or a plain path.
    pub url: String,
    /// Durability of commits.
    pub synchronous: Synchronous,
    /// Reader connections beside the one writer.
    pub readers: u32,
    /// How long a caller waits for a connection (or SQLite for a lock) before the store
    /// reports itself unavailable.
    pub acquire_timeout: Duration,
}

impl SqliteOptions {
    /// Defaults for `url`: full durability, four readers, five seconds of patience.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            synchronous: Synchronous::Full,
            readers: 4,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The store on SQLite.
pub type SqliteStore = SqlStore<SqliteBackend>;

/// SQLite's connections: the one writer and the readers.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    writer: Arc<GroupWriter>,
    readers: SqlitePool,
    /// The connection that checkpoints the write-ahead log.
    checkpointer: SqlitePool,
}

/// How often the write-ahead log is checkpointed.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// A log this long (pages) after a checkpoint means readers keep old snapshots for long:
/// worth a warning, since reads slow down as the log grows.
const LONG_WAL_PAGES: i64 = 100_000;

/// Copies committed pages from the write-ahead log into the database, a few times a
/// second, in the background.
///
/// SQLite's own automatic checkpoint runs inside the `COMMIT` that crosses 1,000 pages of
/// log: that commit, and every write queued behind it on the single writer, waits for
/// pages to be copied and the database file to be synced. Under 10,000 position updates
/// a second that happened several times a second and made the tail of write latency. A
/// passive checkpoint on a connection of its own never blocks the writer, and once it has
/// copied the whole log the writer starts the log again from its beginning.
async fn checkpoint_wal(pool: SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if pool.is_closed() {
            return;
        }
        let result: Result<(i64, i64, i64), sqlx::Error> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        match result {
            Ok((_, log_pages, _)) if log_pages > LONG_WAL_PAGES => {
                tracing::warn!(
                    log_pages,
                    "the SQLite write-ahead log keeps growing: long-running reads hold it"
                );
            }
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => tracing::warn!(%error, "SQLite checkpoint failed"),
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database and runs the migrations.
    pub async fn connect(options: &SqliteOptions) -> Result<Self, StoreError> {
        let url = if options.url.starts_with("sqlite:") {
            options.url.clone()
        } else {
            format!("sqlite://{}", options.url)
        };
        let connect = SqliteConnectOptions::from_str(&url)
            .map_err(map_sqlx)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout)
            .pragma("temp_store", "memory")
            // After the log starts again from its beginning, its file is cut back to this.
            .pragma("journal_size_limit", "67108864");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            // The connection is only ever handed back after a commit or a rollback.
            .test_before_acquire(false)
            // Checkpoints are the checkpointer's (below), not the committing writer's.
            .connect_with(connect.clone().pragma("wal_autocheckpoint", "0"))
            .await
            .map_err(map_sqlx)?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|error| StoreError::Internal(Box::new(error)))?;
        // A SQLite connection lives in this process and cannot break while idle, so the
        // pool's ping before each use (a trip to the connection's thread) is left out.
        let readers = SqlitePoolOptions::new()
            .max_connections(options.readers.max(1))
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(connect.clone().read_only(true))
            .await
            .map_err(map_sqlx)?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(map_sqlx)?;
        tokio::spawn(checkpoint_wal(checkpointer.clone()));
        Ok(SqlStore(SqliteBackend {
            writer: GroupWriter::new(writer, options.acquire_timeout),
            readers,
            checkpointer,
        }))
    }

    /// The writer pool, for tests that must show what the database itself refuses.
    #[doc(hidden)]
    pub fn raw_pool(&self) -> &SqlitePool {
        self.writer.pool()
    }

    /// How many commits the writer made and how many writes they carried (group commit
    /// shares one commit among the writes that queue up together).
    pub fn commit_stats(&self) -> CommitStats {
        self.writer.stats()
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
        self.writer.pool().close().await;
        self.checkpointer.close().await;
    }
}

/// Vehicles whose position one statement updates. SQLite has one writer: a flush of
/// 10,000 positions in one transaction would hold it for tens of milliseconds while
/// dispatch writes queue behind it, so a flush is cut into short transactions (about
/// 2 ms each with the commit) that other writers interleave with.
const POSITION_CHUNK_ROWS: usize = 200;

/// The rows of a chunk arrive as one JSON array of `[id as hex, lat, lon, ts, speed,
/// heading, accuracy, source]`: sqlx binds 1,600 separate parameters about four times
/// slower than SQLite parses them as JSON. A vehicle unknown here is left out, and a
/// stored position never moves back in time. The chunk is sorted by vehicle, and the
/// table is stored in vehicle order, so a chunk rewrites a run of neighbouring pages.
const UPSERT_POSITIONS_SQL: &str = "WITH u(id, lat, lon, ts, speed, heading, accuracy, source) AS MATERIALIZED \
     (SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7 \
     FROM json_each($1)) \
     INSERT INTO vehicle_positions (vehicle_id, lat, lon, fix_at, speed_kmh, heading_deg, accuracy_m, source) \
     SELECT u.id, u.lat, u.lon, u.ts, u.speed, u.heading, u.accuracy, u.source FROM u \
     WHERE EXISTS (SELECT 1 FROM vehicles WHERE vehicles.id = u.id) \
     ON CONFLICT (vehicle_id) DO UPDATE SET lat = excluded.lat, lon = excluded.lon, fix_at = excluded.fix_at, \
     speed_kmh = excluded.speed_kmh, heading_deg = excluded.heading_deg, accuracy_m = excluded.accuracy_m, \
     source = excluded.source WHERE excluded.fix_at > vehicle_positions.fix_at";

impl Backend for SqliteBackend {
    const NAME: &'static str = "sqlite";

    /// Appends an event in one statement, as PostgreSQL does: the insert takes the case's
    /// next sequence number, and the trigger of migration 0007 moves the case's counter
    /// along inside SQLite.
    const APPEND_EVENT_SQL: &str = "INSERT INTO case_events (case_id, seq, at, kind, actor, data) \
         SELECT $1, last_event_seq + 1, $2, $3, $4, $5 FROM cases WHERE id = $1 RETURNING id, seq";
    /// Claims due webhook deliveries under a lease.
    const CLAIM_WEBHOOKS_SQL: &str = "UPDATE webhook_deliveries SET claimed_until = $3 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at LIMIT $2) \
         RETURNING id, provider_id, event, case_id, url, body, status, attempts, next_attempt_at, deadline, created_at, delivered_at, dead_lettered_at, dead_letter_reason";

    /// The next ticket for an expert. One writer at a time: the select and the update of
    /// the claim run in one transaction nobody else can interleave with.
    const CLAIM_TICKET_SQL: &str = "SELECT t.id, t.case_id FROM diagnosis_tickets t \
         WHERE t.outcome IS NULL AND (t.claimed_by IS NULL OR t.claim_expires_at <= $1) \
         AND t.skill IN (SELECT value FROM json_each($2)) AND t.queued_at > $3 \
         ORDER BY t.priority DESC, t.queued_at ASC, t.id ASC LIMIT 1";

    /// Pending offers due for expiry. One writer at a time: no row locks needed.
    const DUE_OFFERS_SQL: &str = "SELECT o.id, o.case_id FROM offers o \
         WHERE o.state = 'pending' AND o.expires_at <= $1 ORDER BY o.expires_at LIMIT $2";

    type Reader<'a> = &'a SqlitePool;
    type Tx<'t> = WriteTx<'t>;

    fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    async fn begin_write(&self) -> Result<WriteTx<'_>, StoreError> {
        self.writer.begin(false).await.map_err(map_sqlx)
    }

    /// A write on a request's critical path: the writer takes it before the others.
    async fn begin_urgent_write(&self) -> Result<WriteTx<'_>, StoreError> {
        self.writer.begin(true).await.map_err(map_sqlx)
    }

    /// A write of position data (trajectory points): an ordinary write on SQLite, whose
    /// group commit already shares the fsync.
    async fn begin_fix_write(&self) -> Result<WriteTx<'_>, StoreError> {
        self.begin_write().await
    }

    /// Latest positions: one multi-row upsert into `vehicle_positions` per chunk, each in
    /// its own transaction.
    async fn save_last_fixes(
        &self,
        fixes: &[(domain::VehicleId, domain::Fix)],
    ) -> Result<u64, StoreError> {
        let rows = crate::rows::newest_fix_per_vehicle(fixes);
        let mut moved = 0;
        for chunk in rows.chunks(POSITION_CHUNK_ROWS) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(id, fix)| {
                    serde_json::json!([
                        id.simple().to_string(),
                        fix.position.lat(),
                        fix.position.lon(),
                        // The text sqlx writes for a timestamp, so that stored times
                        // compare and decode alike whichever statement wrote them.
                        domain::time::to_storage_precision(fix.ts)
                            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                        fix.speed_kmh,
                        fix.heading,
                        fix.accuracy_m,
                        fix.source.as_str(),
                    ])
                })
                .collect();
            let body = serde_json::Value::Array(rows).to_string();
            let mut tx = self.begin_write().await?;
            moved += crate::sql::query(UPSERT_POSITIONS_SQL)
                .bind(body)
                .execute(&mut tx)
                .await?;
            tx.commit().await.map_err(map_sqlx)?;
        }
        Ok(moved)
    }
}

impl_conn!(sqlx::Sqlite, Dialect::Sqlite, &SqlitePool, |this| *this);
impl_conn!(sqlx::Sqlite, Dialect::Sqlite, WriteTx<'_>, |this| {
    &mut **this
});

impl Transaction for WriteTx<'_> {
    async fn commit(self) -> Result<(), StoreError> {
        WriteTx::commit(self).await.map_err(map_sqlx)
    }

    async fn rollback(self) -> Result<(), StoreError> {
        WriteTx::rollback(self).await.map_err(map_sqlx)
    }
}
