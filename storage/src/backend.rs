//! What differs between the two databases, as one small trait: how to read, how to open
//! a write transaction, the few statements each writes in its own dialect, the position
//! upsert, and the one-statement intake PostgreSQL has. Everything else, the queries
//! behind the domain's store ports (`queries/`), is written once, as ordinary generic code
//! over [`Backend`], for [`SqlStore`].

use std::future::Future;

use domain::ports::StoreError;

use crate::sql::Conn;

/// The domain's store ports on one of the databases: [`SqliteStore`](crate::SqliteStore)
/// or [`PgStore`](crate::PgStore).
#[derive(Debug, Clone)]
pub struct SqlStore<B>(pub(crate) B);

impl<B> std::ops::Deref for SqlStore<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.0
    }
}

/// A database the shared queries run on.
pub(crate) trait Backend: Send + Sync + Sized + 'static {
    /// The backend's name, as `Store::backend` reports it.
    const NAME: &'static str;

    /// Appends an event to a case in one statement, taking the case's next sequence number
    /// (`$1` case, `$2` time, `$3` kind, `$4` actor, `$5` data; returns `id, seq`): a CTE on
    /// PostgreSQL, a trigger on SQLite.
    const APPEND_EVENT_SQL: &'static str;
    /// Claims due webhook deliveries under a lease (`$1` now, `$2` limit, `$3` lease end);
    /// PostgreSQL skips rows another instance is claiming.
    const CLAIM_WEBHOOKS_SQL: &'static str;
    /// The next ticket for an expert (`$1` now, `$2` skills as a JSON array, `$3` queued
    /// after); PostgreSQL locks it with its case and skips tickets being claimed elsewhere.
    const CLAIM_TICKET_SQL: &'static str;
    /// Pending offers due for expiry (`$1` now, `$2` limit); PostgreSQL locks their cases
    /// and skips those another instance is sweeping.
    const DUE_OFFERS_SQL: &'static str;
    /// Whether a dispatched intake (the case, its first offer, its events and its
    /// idempotency key) is written by one statement of the backend's own
    /// ([`Backend::create_triaged_case`]) instead of the shared transaction.
    const ONE_STATEMENT_INTAKE: bool = false;

    /// A connection of the reader pool.
    type Reader<'a>: Conn
    where
        Self: 'a;
    /// A write transaction.
    type Tx<'t>: Transaction
    where
        Self: 't;

    /// Somewhere to read.
    fn reader(&self) -> Self::Reader<'_>;
    /// A write transaction.
    fn begin_write(&self) -> impl Future<Output = Result<Self::Tx<'_>, StoreError>> + Send;
    /// A write on a request's critical path (SQLite's single writer takes it first).
    fn begin_urgent_write(&self) -> impl Future<Output = Result<Self::Tx<'_>, StoreError>> + Send;
    /// A write of position data, which may commit without waiting for the disk
    /// (PostgreSQL's position pool).
    fn begin_fix_write(&self) -> impl Future<Output = Result<Self::Tx<'_>, StoreError>> + Send;

    /// Upserts the latest position of each vehicle into `vehicle_positions`, in short
    /// chunks; the number of rows that moved.
    fn save_last_fixes(
        &self,
        fixes: &[(domain::VehicleId, domain::Fix)],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Writes a new case with its triage: by default through the shared transaction
    /// ([`SqlStore::create_triaged_case_in_transaction`]); a backend with
    /// [`Backend::ONE_STATEMENT_INTAKE`] writes a dispatched intake's rows its own way.
    fn create_triaged_case(
        store: &SqlStore<Self>,
        case: &domain::Case,
        created: &domain::NewEvent,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
        triage: &domain::ports::TriageWrite,
    ) -> impl Future<
        Output = Result<
            (
                domain::ports::CreateCaseOutcome,
                Option<domain::ports::TriagedCase>,
            ),
            StoreError,
        >,
    > + Send {
        store.create_triaged_case_in_transaction(case, created, idempotency, triage)
    }
}

/// A write transaction of a [`Backend`].
pub(crate) trait Transaction: Conn {
    /// Makes the writes durable (on SQLite: once the group commit that carries them is).
    fn commit(self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Undoes the writes.
    fn rollback(self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<B: Backend> domain::ports::Store for SqlStore<B> {
    fn backend(&self) -> &'static str {
        B::NAME
    }
}
