//! The domain's storage ports ([`domain::ports::Store`]) for SQLite and PostgreSQL.
//!
//! Both backends run the same queries: the SQL is written once, in the dialect both
//! understand (`$1` placeholders, `RETURNING`, `ON CONFLICT`, partial indexes), as
//! ordinary generic code over the small [`Backend`] trait that holds what differs
//! (`queries/`, `backend.rs`, `sql.rs`). Each backend has its own
//! migrations folder (`migrations/sqlite`, `migrations/postgres`) because their types differ:
//! PostgreSQL gets `uuid`, `timestamptz` and `jsonb`; SQLite gets blobs, RFC 3339 text and
//! JSON text in `STRICT` tables.
//!
//! Every state change and its timeline event are written in one transaction. The timeline
//! is append-only: triggers refuse `UPDATE` and `DELETE` on `case_events` in both
//! databases.
//!
//! SQLite takes one writer at a time. The store therefore keeps a pool of one connection
//! for writes, so writers queue in the application instead of failing with `SQLITE_BUSY`,
//! and a separate pool for reads, which WAL lets run beside the writer. Writes that queue
//! up together share one commit (group commit, `group_commit.rs`): each is a savepoint
//! in the open transaction, and each caller returns once the shared commit is durable.

mod backend;
mod error;
mod group_commit;
mod postgres;
mod queries;
mod rows;
mod sql;
mod sqlite;

pub use crate::backend::SqlStore;
pub use crate::group_commit::CommitStats;
pub use crate::postgres::{PgBackend, PgOptions, PgStore};
pub use crate::sqlite::{SqliteBackend, SqliteOptions, SqliteStore, Synchronous};

#[cfg(feature = "testing")]
pub mod testing;
