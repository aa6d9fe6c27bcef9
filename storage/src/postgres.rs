//! PostgreSQL: the source of truth when several server instances run together.

use std::str::FromStr;
use std::time::Duration;

use domain::ports::StoreError;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::backend::{Backend, SqlStore, Transaction};
use crate::error::map_sqlx;
use crate::sql::{Dialect, impl_conn};

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
pub type PgStore = SqlStore<PgBackend>;

/// PostgreSQL's pools.
#[derive(Debug, Clone)]
pub struct PgBackend {
    pool: PgPool,
    /// Connections whose commits do not wait for the WAL flush, for position data only
    /// (see [`PgStore::begin_fix_write`]).
    fixes: PgPool,
}

/// The PostgreSQL migrations, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Brings a database migrated before PostgreSQL's migration numbers were aligned with
/// SQLite's up to the new numbering, before the migrator checks it.
///
/// `vehicle_positions` was released as PostgreSQL's migration 7, while SQLite's 7 is the
/// event sequence trigger and its `vehicle_positions` is 8. Now PostgreSQL's 7 is a no-op
/// counterpart of that trigger and `vehicle_positions` is 8, byte for byte the file
/// released as 7. A database that recorded `vehicle_positions` as version 7 (same
/// description, same checksum) and has no version 8 gets that record moved to 8, with
/// its install time, run time and outcome, and the no-op recorded as 7. Anything else
/// (a new database, one already renumbered, one before `vehicle_positions`) is left to
/// the migrator. The table lock makes a second instance starting at the same time wait
/// and then find the work done.
async fn renumber_vehicle_positions(pool: &PgPool) -> Result<(), StoreError> {
    let migration = |version| {
        MIGRATOR
            .iter()
            .find(|migration| migration.version == version)
            .ok_or_else(|| StoreError::Internal(format!("migration {version} is missing").into()))
    };
    let (no_op, positions) = (migration(7)?, migration(8)?);
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(pool)
        .await
        .map_err(map_sqlx)?;
    if table.is_none() {
        return Ok(()); // a new database
    }
    let mut tx = begin_on(pool).await?;
    sqlx::query("LOCK TABLE _sqlx_migrations IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    let recorded: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
        "SELECT version, description, checksum FROM _sqlx_migrations WHERE version IN (7, 8) ORDER BY version",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    let old_numbering = matches!(
        recorded.as_slice(),
        [(7, description, checksum)]
            if *description == *positions.description && *checksum == *positions.checksum
    );
    if !old_numbering {
        return tx.rollback().await.map_err(map_sqlx);
    }
    sqlx::query("UPDATE _sqlx_migrations SET version = 8 WHERE version = 7")
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (7, $1, TRUE, $2, 0)",
    )
    .bind(&*no_op.description)
    .bind(&*no_op.checksum)
    .execute(&mut *tx)
    .await
    .map_err(map_sqlx)?;
    tx.commit().await.map_err(map_sqlx)?;
    tracing::info!(
        "migrations: vehicle_positions, applied as version 7 before the numbers were aligned with SQLite's, is now recorded as 8, and 7 as the no-op event_seq_trigger"
    );
    Ok(())
}

/// Connections of the position pool: position flushes and trajectory points.
const FIX_POOL_CONNECTIONS: u32 = 2;

/// A connection idle this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// Pool settings shared by both pools: a connection is checked with a round trip only
/// after it sat idle for [`PING_AFTER_IDLE`], not on every acquire (sqlx's default). Under
/// load every connection is busy again within milliseconds, and the ping was a second
/// round trip, and a second wakeup of a PostgreSQL backend, in front of every statement:
/// without it a dispatched intake's median fell from 4.0 to 3.2 ms in the 50 req/s
/// scenario. A connection that broke while in use fails its statement, sqlx closes it, and
/// the pool opens a new one.
fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

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
        let pool = pool_options()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_sqlx)?;
        // Asynchronous commit: the WAL writer flushes within 3 × `wal_writer_delay`
        // (600 ms by default), so a crash of the database loses less than the last second
        // of positions, which is what the fleet's persistence promises, and the position
        // stream neither waits for fsyncs nor holds vehicle row locks through them.
        let fixes = pool_options()
            .max_connections(FIX_POOL_CONNECTIONS)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect.options([("synchronous_commit", "off")]));
        renumber_vehicle_positions(&pool).await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|error| StoreError::Internal(Box::new(error)))?;
        Ok(SqlStore(PgBackend { pool, fixes }))
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

/// A write transaction on `pool`. `BEGIN` runs in a task of its own: sqlx 0.9 leaves a
/// pooled connection inside a transaction nothing will end when the future of `begin` is
/// dropped during its round trip (transact-rs/sqlx#4385), and a request cancelled by its
/// client or by the request timeout would do exactly that. The next borrower's statements
/// would then hold their row locks forever.
async fn begin_on(pool: &PgPool) -> Result<Tx<'static>, StoreError> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|error| StoreError::Unavailable(format!("the transaction task failed: {error}")))?
        .map_err(map_sqlx)
}

impl Backend for PgBackend {
    const NAME: &str = "postgres";
    // A dispatched intake is one statement here, not the seven round trips of the
    // transaction.
    const ONE_STATEMENT_INTAKE: bool = true;

    /// Appends an event in one round trip: the bump of the case's sequence (which locks
    /// the case row, as `next_event_seq`) feeds the insert.
    const APPEND_EVENT_SQL: &str = "WITH bumped AS (UPDATE cases SET last_event_seq = last_event_seq + 1, updated_at = $2 \
         WHERE id = $1 RETURNING last_event_seq) \
         INSERT INTO case_events (case_id, seq, at, kind, actor, data) \
         SELECT $1, last_event_seq, $2, $3, $4, $5 FROM bumped RETURNING id, seq";

    /// Claims due webhook deliveries under a lease.
    const CLAIM_WEBHOOKS_SQL: &str = "UPDATE webhook_deliveries SET claimed_until = $3 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, provider_id, event, case_id, url, body, status, attempts, next_attempt_at, deadline, created_at, delivered_at, dead_lettered_at, dead_letter_reason";

    /// The next ticket for an expert, locked with its case; tickets other experts are
    /// claiming right now are skipped, not waited for.
    const CLAIM_TICKET_SQL: &str = "SELECT t.id, t.case_id FROM diagnosis_tickets t JOIN cases c ON c.id = t.case_id \
         WHERE t.outcome IS NULL AND (t.claimed_by IS NULL OR t.claim_expires_at <= $1) \
         AND t.skill IN (SELECT jsonb_array_elements_text($2)) AND t.queued_at > $3 \
         ORDER BY t.priority DESC, t.queued_at ASC, t.id ASC LIMIT 1 FOR UPDATE OF t, c SKIP LOCKED";

    /// Pending offers due for expiry, locking their cases and skipping cases another
    /// instance is working on, so concurrent sweeps share the work without waiting.
    const DUE_OFFERS_SQL: &str = "SELECT o.id, o.case_id FROM offers o JOIN cases c ON c.id = o.case_id \
         WHERE o.state = 'pending' AND o.expires_at <= $1 ORDER BY o.expires_at LIMIT $2 \
         FOR UPDATE OF c SKIP LOCKED";

    type Reader<'a> = &'a PgPool;
    type Tx<'t> = Tx<'t>;

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<Tx<'_>, StoreError> {
        begin_on(&self.pool).await
    }

    /// A write on a request's critical path. PostgreSQL has no single writer to jump the
    /// queue of: as `begin_write`.
    async fn begin_urgent_write(&self) -> Result<Tx<'_>, StoreError> {
        begin_on(&self.pool).await
    }

    /// A write of position data (trajectory points), committed asynchronously like the
    /// position flushes: see the position pool in [`PgStore::connect`].
    async fn begin_fix_write(&self) -> Result<Tx<'_>, StoreError> {
        begin_on(&self.fixes).await
    }

    /// Latest positions: one `INSERT … SELECT FROM UNNEST(arrays) ON CONFLICT DO UPDATE` per
    /// chunk into `vehicle_positions`, in vehicle-id order
    /// (one lock order for every writer, so concurrent flushes cannot deadlock).
    async fn save_last_fixes(
        &self,
        fixes: &[(domain::VehicleId, domain::Fix)],
    ) -> Result<u64, StoreError> {
        let rows = crate::rows::newest_fix_per_vehicle(fixes);
        let mut moved = 0;
        for chunk in rows.chunks(POSITION_CHUNK_ROWS) {
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
                "INSERT INTO vehicle_positions (vehicle_id, lat, lon, fix_at, speed_kmh, heading_deg, accuracy_m, source) \
                 SELECT u.id, u.lat, u.lon, u.ts, u.speed, u.heading, u.accuracy, u.source \
                 FROM UNNEST($1::uuid[], $2::float8[], $3::float8[], $4::timestamptz[], $5::float8[], $6::float8[], \
                 $7::float8[], $8::text[]) AS u(id, lat, lon, ts, speed, heading, accuracy, source) \
                 WHERE EXISTS (SELECT 1 FROM vehicles v WHERE v.id = u.id) \
                 ON CONFLICT (vehicle_id) DO UPDATE SET lat = EXCLUDED.lat, lon = EXCLUDED.lon, fix_at = EXCLUDED.fix_at, \
                 speed_kmh = EXCLUDED.speed_kmh, heading_deg = EXCLUDED.heading_deg, accuracy_m = EXCLUDED.accuracy_m, \
                 source = EXCLUDED.source WHERE vehicle_positions.fix_at < EXCLUDED.fix_at",
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

    async fn create_triaged_case(
        store: &PgStore,
        case: &domain::Case,
        created: &domain::NewEvent,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
        triage: &domain::ports::TriageWrite,
    ) -> Result<
        (
            domain::ports::CreateCaseOutcome,
            Option<domain::ports::TriagedCase>,
        ),
        StoreError,
    > {
        match triage {
            domain::ports::TriageWrite::Dispatch {
                event,
                reason,
                offers,
            } => {
                store
                    .create_dispatched_case_in_one_statement(
                        case,
                        created,
                        idempotency,
                        event,
                        reason,
                        offers,
                    )
                    .await
            }
            domain::ports::TriageWrite::Queue { .. } => {
                store
                    .create_triaged_case_in_transaction(case, created, idempotency, triage)
                    .await
            }
        }
    }
}

/// Positions one statement writes. An offer's claim of a truck locks its `vehicles`
/// row, never its position (a table of its own), so this only bounds how long one
/// statement holds its position rows against a concurrent flush.
const POSITION_CHUNK_ROWS: usize = 500;

impl_conn!(sqlx::Postgres, Dialect::Postgres, &PgPool, |this| *this);
impl_conn!(sqlx::Postgres, Dialect::Postgres, Tx<'_>, |this| {
    &mut **this
});

impl Transaction for Tx<'_> {
    async fn commit(self) -> Result<(), StoreError> {
        sqlx::Transaction::commit(self).await.map_err(map_sqlx)
    }

    async fn rollback(self) -> Result<(), StoreError> {
        sqlx::Transaction::rollback(self).await.map_err(map_sqlx)
    }
}

impl PgStore {
    /// Writes a new case that triage sends to a vehicle, with its first offer, in one
    /// statement and so in one round trip and one commit, where the transaction of
    /// `dispatch_new_in_tx` takes seven (`BEGIN`, the key, the claim, the case, the offer,
    /// the events, `COMMIT`). Each round trip is a wakeup of this process and of a
    /// PostgreSQL backend; on a loaded machine each one can wait milliseconds for a CPU,
    /// and that wait, not the statements, made the dispatch latency's tail.
    ///
    /// The statement does what the transaction does, in the same lock order (key, vehicle,
    /// then the new rows): the first candidate still `available` once its row is locked is
    /// claimed (`FOR UPDATE` re-checks the state of a row another claim changed meanwhile,
    /// and the `LIMIT` moves on to the next), the offer's times start no earlier than the
    /// vehicle's last offer or job ended, and the case, the offer and the events go in. A
    /// key used before writes nothing, and the first request's answer is read back.
    ///
    /// `create_triaged_case` writes every dispatched intake this way on PostgreSQL (see
    /// [`PgStore::ONE_STATEMENT_INTAKE`]). Public for the test that compares it with the
    /// transaction (`storage/tests/intake_one_statement.rs`); callers use
    /// `create_triaged_case`.
    #[doc(hidden)]
    pub async fn create_dispatched_case_in_one_statement(
        &self,
        case: &domain::Case,
        created: &domain::NewEvent,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
        triage: &domain::NewEvent,
        reason: &str,
        offers: &[(domain::ports::NewOffer, domain::NewEvent)],
    ) -> Result<
        (
            domain::ports::CreateCaseOutcome,
            Option<domain::ports::TriagedCase>,
        ),
        StoreError,
    > {
        use domain::time::to_storage_precision as stored;
        use sqlx::Row as _;

        let at = stored(triage.at);
        let (to, changed) = crate::rows::dispatching_event(at, reason)?;
        let fixed = [created, triage, &changed];
        let mut candidates = Candidates::default();
        for (offer, ranking) in offers {
            if offer.case_id != case.id {
                return Err(StoreError::Conflict(
                    "a first offer names another case".into(),
                ));
            }
            candidates.push(offer, ranking)?;
        }
        let sql = if idempotency.is_some() {
            &*DISPATCHED_CASE_WITH_KEY_SQL
        } else {
            &*DISPATCHED_CASE_SQL
        };
        let json = |event: &domain::NewEvent| serde_json::to_string(&event.data);
        // The case's columns as the shared `insert_case_row` binds them, then this
        // statement's own arrays, which only PostgreSQL binds.
        let shared = Self::bind_case_columns(crate::sql::query(sql.as_str()), case, to)
            .bind(at)
            .bind(fixed.len() as i64);
        let (sql, args) = shared.into_parts(Dialect::Postgres);
        let args = crate::sql::arguments::<sqlx::Postgres>(args).map_err(StoreError::Internal)?;
        let mut query = sqlx::query_with(sql, args)
            // The candidates, best first.
            .bind(candidates.vehicle_ids)
            .bind(candidates.offer_ids)
            .bind(candidates.provider_ids)
            .bind(candidates.attempts)
            .bind(candidates.etas)
            .bind(candidates.distances)
            .bind(candidates.sent_ats)
            .bind(candidates.expires_ats)
            .bind(candidates.ranking_ats)
            .bind(candidates.ranking_actors)
            .bind(candidates.ranking_data)
            .bind(candidates.sent_data)
            .bind(domain::event::EventKind::CandidatesRanked.as_str())
            .bind(domain::event::EventKind::OfferSent.as_str())
            .bind(domain::Actor::System.to_string())
            // The events every such case starts with: created, triage, status change.
            .bind(fixed.iter().map(|e| stored(e.at)).collect::<Vec<_>>())
            .bind(fixed.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
            .bind(
                fixed
                    .iter()
                    .map(|e| e.actor.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(
                fixed
                    .iter()
                    .map(|e| json(e))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|error| StoreError::Internal(Box::new(error)))?,
            );
        if let Some(claim) = idempotency {
            query = query
                .bind(&claim.scope)
                .bind(&claim.key)
                .bind(&claim.request_hash[..])
                .bind(sqlx::types::Json(&claim.response))
                .bind(stored(claim.created_at));
        }
        let row = query.fetch_one(&self.pool).await.map_err(map_sqlx)?;
        let written: bool = row.try_get("written").map_err(map_sqlx)?;
        if !written {
            let claim = idempotency.ok_or_else(|| {
                StoreError::Internal("a case without a key was not written".into())
            })?;
            return Ok((Self::read_replay(&self.pool, claim).await?, None));
        }
        let offer_id: Option<uuid::Uuid> = row.try_get("id").map_err(map_sqlx)?;
        let mut dispatching = Self::stored_case(case);
        dispatching.status = to;
        dispatching.updated_at = at;
        let triaged = match offer_id {
            Some(_) => {
                let offer: domain::Offer =
                    <crate::rows::OfferRow as sqlx::FromRow<_>>::from_row(&row)
                        .map_err(map_sqlx)?
                        .try_into()?;
                dispatching.updated_at = offer.sent_at;
                domain::ports::TriagedCase::Offered {
                    case: Box::new(dispatching),
                    offer: Box::new(offer),
                }
            }
            None => domain::ports::TriagedCase::Dispatching(Box::new(dispatching)),
        };
        Ok((
            domain::ports::CreateCaseOutcome::Created(Box::new(Self::stored_case(case))),
            Some(triaged),
        ))
    }
}

/// The first offers of a new case as the columns of
/// `create_dispatched_case_in_one_statement`'s arrays.
#[derive(Default)]
struct Candidates {
    vehicle_ids: Vec<uuid::Uuid>,
    offer_ids: Vec<uuid::Uuid>,
    provider_ids: Vec<uuid::Uuid>,
    attempts: Vec<i32>,
    etas: Vec<i32>,
    distances: Vec<f64>,
    sent_ats: Vec<domain::Timestamp>,
    expires_ats: Vec<domain::Timestamp>,
    ranking_ats: Vec<domain::Timestamp>,
    ranking_actors: Vec<String>,
    ranking_data: Vec<String>,
    /// The `offer_sent` event's data for the offer's own times; the statement corrects
    /// `expires_at` when the vehicle was freed after them.
    sent_data: Vec<String>,
}

impl Candidates {
    fn push(
        &mut self,
        offer: &domain::ports::NewOffer,
        ranking: &domain::NewEvent,
    ) -> Result<(), StoreError> {
        use domain::time::to_storage_precision as stored;
        let (sent_at, expires_at) = (stored(offer.sent_at), stored(offer.expires_at));
        let sent = crate::rows::offer_sent_event(offer, sent_at, expires_at);
        let json = |value: &serde_json::Value| {
            serde_json::to_string(value).map_err(|error| StoreError::Internal(Box::new(error)))
        };
        self.vehicle_ids.push(offer.vehicle_id.as_uuid());
        self.offer_ids.push(offer.id.as_uuid());
        self.provider_ids.push(offer.provider_id.as_uuid());
        self.attempts
            .push(i32::try_from(offer.attempt).unwrap_or(i32::MAX));
        self.etas
            .push(i32::try_from(offer.eta_s).unwrap_or(i32::MAX));
        self.distances.push(offer.distance_m);
        self.sent_ats.push(sent_at);
        self.expires_ats.push(expires_at);
        self.ranking_ats.push(stored(ranking.at));
        self.ranking_actors.push(ranking.actor.to_string());
        self.ranking_data.push(json(&ranking.data)?);
        self.sent_data.push(json(&sent.data)?);
        Ok(())
    }
}

/// `create_dispatched_case_in_one_statement`'s statement for a request without an
/// idempotency key.
static DISPATCHED_CASE_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| dispatched_case_sql(false));
/// … and with one: `$42`–`$46` are the key's row, and nothing is written when it exists.
static DISPATCHED_CASE_WITH_KEY_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| dispatched_case_sql(true));

/// Parameters: `$1`–`$21` the case's columns as `insert_case_row` binds them, `$22` when
/// it became `dispatching`, `$23` how many events it starts with; `$24`–`$35` the
/// candidates' arrays (see [`Candidates`]), `$36`/`$37` the kinds of the ranking and the
/// offer event, `$38` the system actor; `$39`–`$42` the starting events' arrays (time,
/// kind, actor, data); with a key, `$43`–`$47` its row. Returns one row: `written`, and
/// the stored offer's columns (all null when no candidate could be claimed).
fn dispatched_case_sql(with_key: bool) -> String {
    let (key_cte, if_key, key_ok) = if with_key {
        (
            "key AS (INSERT INTO idempotency_keys (scope, key, request_hash, case_id, response, created_at) \
             VALUES ($43, $44, $45, $1, $46, $47) ON CONFLICT (scope, key) DO NOTHING RETURNING 1), ",
            " AND EXISTS (SELECT 1 FROM key)",
            "EXISTS (SELECT 1 FROM key)",
        )
    } else {
        ("", "", "true")
    };
    format!(
        "WITH {key_cte}\
         cand AS (SELECT * FROM UNNEST($24::uuid[], $25::uuid[], $26::uuid[], $27::int4[], $28::int4[], \
           $29::float8[], $30::timestamptz[], $31::timestamptz[], $32::timestamptz[], $33::text[], $34::text[], $35::text[]) \
           WITH ORDINALITY AS c(vehicle_id, offer_id, provider_id, attempt, eta_s, distance_m, sent_at, expires_at, \
           ranking_at, ranking_actor, ranking_data, sent_data, ord)), \
         pick AS (SELECT c.* FROM cand c JOIN vehicles v ON v.id = c.vehicle_id \
           WHERE v.state = 'available'{if_key} ORDER BY c.ord LIMIT 1 FOR UPDATE OF v), \
         claimed AS (UPDATE vehicles v SET state = 'offered', updated_at = p.sent_at FROM pick p \
           WHERE v.id = p.vehicle_id AND v.state = 'available' \
           RETURNING p.*, (SELECT MAX(COALESCE(o.released_at, o.answered_at)) FROM offers o WHERE o.vehicle_id = v.id) AS free_since), \
         times AS (SELECT c.*, GREATEST(c.sent_at, COALESCE(c.free_since, c.sent_at)) AS offer_sent_at, \
           c.expires_at + GREATEST(COALESCE(c.free_since, c.sent_at) - c.sent_at, interval '0') AS offer_expires_at \
           FROM claimed c), \
         texts AS (SELECT t.*, {expires_text} AS offer_expires_text FROM times t), \
         new_case AS (INSERT INTO cases (id, channel, status, service, tier, customer_name, customer_phone, \
           member_id, plate, vehicle_model, powertrain, lat, lon, accuracy_m, address, road_kind, \
           fault_category, symptoms, fault_description, promised_arrival, created_at, updated_at, \
           last_event_seq, dispatch_round) \
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
           COALESCE((SELECT offer_sent_at FROM times), $22), $23 + 2 * (SELECT count(*) FROM times), 1 \
           WHERE true{if_key}), \
         new_offer AS (INSERT INTO offers (id, case_id, vehicle_id, provider_id, state, round, attempt, eta_s, \
           distance_m, sent_at, expires_at) \
           SELECT t.offer_id, $1, t.vehicle_id, t.provider_id, 'pending', 1, t.attempt, t.eta_s, t.distance_m, \
           t.offer_sent_at, t.offer_expires_at FROM times t \
           RETURNING {offer_columns}), \
         new_events AS (INSERT INTO case_events (case_id, seq, at, kind, actor, data) \
           SELECT $1, e.seq, e.at, e.kind, e.actor, e.data FROM ( \
             SELECT f.ord AS seq, f.at, f.kind, f.actor, f.data::jsonb AS data \
               FROM UNNEST($39::timestamptz[], $40::text[], $41::text[], $42::text[]) WITH ORDINALITY AS f(at, kind, actor, data, ord) \
               WHERE true{if_key} \
             UNION ALL SELECT $23 + 1, t.ranking_at, $36, t.ranking_actor, t.ranking_data::jsonb FROM times t \
             UNION ALL SELECT $23 + 2, t.offer_sent_at, $37, $38, \
               CASE WHEN t.offer_sent_at > t.sent_at \
                 THEN jsonb_set(t.sent_data::jsonb, '{{expires_at}}', to_jsonb(t.offer_expires_text)) \
                 ELSE t.sent_data::jsonb END FROM texts t) e) \
         SELECT {key_ok} AS written, o.* FROM (SELECT 1) AS one LEFT JOIN new_offer o ON true",
        offer_columns = crate::rows::OFFER_COLUMNS,
        expires_text = rfc3339_text("t.offer_expires_at"),
    )
}

/// SQL for the text serde gives a `DateTime<Utc>` (chrono's RFC 3339 with `Z` and as many
/// fraction digits as needed: none, 3 or 6 at storage precision) of the `timestamptz`
/// expression `at`. A time the one-statement intake writes into event data must read as
/// the transaction's does: `to_jsonb(timestamptz)` would give `+00:00` (or the session's
/// offset) instead of `Z`.
fn rfc3339_text(at: &str) -> String {
    let utc = format!("({at} AT TIME ZONE 'UTC')");
    format!(
        "(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || \
         CASE WHEN date_part('microseconds', {utc})::bigint % 1000000 = 0 THEN '' \
         WHEN date_part('microseconds', {utc})::bigint % 1000 = 0 THEN to_char({utc}, '.MS') \
         ELSE to_char({utc}, '.US') END || 'Z')"
    )
}
