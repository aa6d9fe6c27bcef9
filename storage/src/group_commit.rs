//! Group commit for SQLite's single writer.
//!
//! Every write is a short transaction, and under `synchronous = full` every commit waits
//! for an fsync of the write-ahead log. At a few hundred writes a second those fsyncs,
//! not the statements, are what the writer spends its time on, and every other write
//! queues behind them. Group commit shares one fsync among the writes that queue up
//! together, without giving up durability: a caller still returns only once its write is
//! on disk.
//!
//! How: the writer connection opens one physical transaction (a *group*). Each logical
//! write runs inside it as a savepoint: `SAVEPOINT w` … `RELEASE w` when it succeeds,
//! `ROLLBACK TO w` when it fails (undoing only its own statements). After its `RELEASE`
//! the write leaves the connection to the next writer in the queue and waits for the
//! group's `COMMIT`, which a committer task issues when its turn in the queue comes. The
//! queue is first come, first served, so the commit comes right after the writes that
//! were already waiting: alone, a write is committed at once, as before; in a crowd,
//! the writes queued together share one commit. When the commit fails, every write of
//! the group is told so, and none of them is in the database.
//!
//! Reads on the reader pool see a write only after its group committed, as they see a
//! plain transaction only after its commit; a later write of the same group sees the
//! earlier ones, as it would had they committed first.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, Notify, OwnedMappedMutexGuard, OwnedMutexGuard, watch};

/// How a group ended: `None` while it is open, then the commit's outcome.
type Outcome = Option<Result<(), String>>;

/// The writer connection while a group is open.
struct Open {
    conn: PoolConnection<Sqlite>,
    /// Writes released into the group so far.
    writes: u64,
    /// Told the group's outcome; each write of the group holds a receiver.
    outcome: watch::Sender<Outcome>,
    /// A write was abandoned (its future dropped) inside its savepoint: the next user
    /// rolls it back before doing anything else.
    abandoned: bool,
}

/// The writer slot: empty between groups (the connection is back in its pool).
#[derive(Default)]
struct Slot {
    open: Option<Open>,
}

impl Slot {
    /// Rolls back a write that was abandoned in its savepoint. A connection that cannot
    /// even do that is discarded with its group.
    async fn clean_up(&mut self) {
        let Some(open) = self.open.as_mut() else {
            return;
        };
        if !open.abandoned {
            return;
        }
        match sqlx::raw_sql("ROLLBACK TO w; RELEASE w")
            .execute(&mut *open.conn)
            .await
        {
            Ok(_) => open.abandoned = false,
            Err(error) => self.fail(format!("rolling back an abandoned write failed: {error}")),
        }
    }

    /// Ends the open group without committing it: its writes are lost and told so, and
    /// the connection is closed (SQLite rolls back what it had not committed).
    fn fail(&mut self, reason: String) {
        if let Some(mut open) = self.open.take() {
            tracing::error!(%reason, "SQLite write group failed");
            open.conn.close_on_drop();
            open.outcome.send_replace(Some(Err(reason)));
        }
    }
}

/// Commits and the writes they carried, since the store was opened.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    groups: AtomicU64,
    writes: AtomicU64,
}

/// How many commits the writer made and how many writes they carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Physical commits (fsyncs under `synchronous = full`).
    pub groups: u64,
    /// Logical write transactions committed.
    pub writes: u64,
}

/// The single SQLite writer with group commit (see the module docs).
#[derive(Debug)]
pub(crate) struct GroupWriter {
    pool: SqlitePool,
    slot: Arc<Mutex<Slot>>,
    committer: Arc<Notify>,
    acquire_timeout: Duration,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Slot")
            .field("open", &self.open.is_some())
            .finish()
    }
}

impl GroupWriter {
    /// A writer over `pool` (one connection), with its committer task.
    pub(crate) fn new(pool: SqlitePool, acquire_timeout: Duration) -> Arc<GroupWriter> {
        let writer = Arc::new(GroupWriter {
            pool,
            slot: Arc::new(Mutex::new(Slot::default())),
            committer: Arc::new(Notify::new()),
            acquire_timeout,
            counters: Arc::default(),
        });
        tokio::spawn(commit_groups(
            Arc::downgrade(&writer.slot),
            Arc::clone(&writer.committer),
            Arc::clone(&writer.counters),
        ));
        writer
    }

    /// Commits made and writes committed so far.
    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            groups: self.counters.groups.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
        }
    }

    /// The pool the writer connection comes from.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Starts a write: waits its turn for the connection (at most the acquire timeout),
    /// joins the open group or opens one, and sets its savepoint.
    ///
    /// The statements that open and close groups and savepoints run in tasks of their
    /// own, so a caller that goes away (a cancelled request) cannot leave the connection
    /// half way through one of them.
    pub(crate) async fn begin(&self) -> Result<WriteTx<'_>, sqlx::Error> {
        let slot = Arc::clone(&self.slot);
        let pool = self.pool.clone();
        let committer = Arc::clone(&self.committer);
        let acquire_timeout = self.acquire_timeout;
        let held = tokio::spawn(async move {
            let mut slot = tokio::time::timeout(acquire_timeout, slot.lock_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?;
            slot.clean_up().await;
            if slot.open.is_none() {
                let mut conn = pool.acquire().await?;
                if let Err(error) = sqlx::raw_sql("BEGIN").execute(&mut *conn).await {
                    conn.close_on_drop();
                    return Err(error);
                }
                slot.open = Some(Open {
                    conn,
                    writes: 0,
                    outcome: watch::channel(None).0,
                    abandoned: false,
                });
            }
            let mut open = OwnedMutexGuard::try_map(slot, |slot| slot.open.as_mut())
                .map_err(|_| sqlx::Error::PoolClosed)?;
            match sqlx::raw_sql("SAVEPOINT w").execute(&mut *open.conn).await {
                Ok(_) => Ok(Held {
                    open: Some(open),
                    committer,
                }),
                Err(error) => {
                    drop(open);
                    committer.notify_one();
                    Err(error)
                }
            }
        })
        .await
        .map_err(task_failed)??;
        Ok(WriteTx {
            held: Some(held),
            _writer: PhantomData,
        })
    }
}

fn task_failed(error: tokio::task::JoinError) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the SQLite writer task failed: {error}"
    )))
}

/// Commits each open group when its turn for the connection comes.
async fn commit_groups(slot: Weak<Mutex<Slot>>, committer: Arc<Notify>, counters: Arc<Counters>) {
    loop {
        committer.notified().await;
        let Some(slot) = slot.upgrade() else {
            return;
        };
        let mut slot = slot.lock().await;
        slot.clean_up().await;
        let Some(mut open) = slot.open.take() else {
            continue;
        };
        match sqlx::raw_sql("COMMIT").execute(&mut *open.conn).await {
            Ok(_) => {
                counters.groups.fetch_add(1, Ordering::Relaxed);
                counters.writes.fetch_add(open.writes, Ordering::Relaxed);
                open.outcome.send_replace(Some(Ok(())));
            }
            Err(error) => {
                slot.open = Some(open);
                slot.fail(format!("commit failed: {error}"));
            }
        }
    }
}

/// The connection held by one write inside its savepoint. Dropped while armed (the
/// write neither committed nor rolled back), it marks the savepoint for rollback by the
/// next user of the connection.
struct Held {
    open: Option<OwnedMappedMutexGuard<Slot, Open>>,
    committer: Arc<Notify>,
}

impl Held {
    fn open(&mut self) -> &mut Open {
        match &mut self.open {
            Some(open) => open,
            None => unreachable!("a held connection is used after it was let go"),
        }
    }

    /// Lets the connection go with the savepoint closed.
    fn disarm(mut self) {
        if let Some(open) = self.open.take() {
            drop(open);
            self.committer.notify_one();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut open) = self.open.take() {
            open.abandoned = true;
            drop(open);
            self.committer.notify_one();
        }
    }
}

/// One logical write transaction: a savepoint in the open group. Dereferences to the
/// connection, like `sqlx::Transaction`. Dropped without `commit` or `rollback` (an
/// early return or a cancelled request), its statements are rolled back.
pub(crate) struct WriteTx<'a> {
    held: Option<Held>,
    _writer: PhantomData<&'a GroupWriter>,
}

impl std::fmt::Debug for WriteTx<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("WriteTx").finish_non_exhaustive()
    }
}

impl WriteTx<'_> {
    /// Keeps the write and returns once its group is committed (durably, under
    /// `synchronous = full`). An error means the write is not in the database.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let Some(mut held) = self.held.take() else {
            return Ok(());
        };
        let mut outcome = tokio::spawn(async move {
            let open = held.open();
            sqlx::raw_sql("RELEASE w").execute(&mut *open.conn).await?;
            open.writes += 1;
            let outcome = open.outcome.subscribe();
            held.disarm();
            Ok::<_, sqlx::Error>(outcome)
        })
        .await
        .map_err(task_failed)??;
        match outcome.wait_for(Option::is_some).await {
            Ok(result) => match result.as_ref() {
                Some(Ok(())) => Ok(()),
                Some(Err(reason)) => Err(group_failed(reason.clone())),
                None => Err(group_failed(
                    "the group ended without an outcome".to_owned(),
                )),
            },
            Err(_) => Err(group_failed("the committer stopped".to_owned())),
        }
    }

    /// Undoes the write's statements; the group goes on without them.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let Some(mut held) = self.held.take() else {
            return Ok(());
        };
        tokio::spawn(async move {
            sqlx::raw_sql("ROLLBACK TO w; RELEASE w")
                .execute(&mut *held.open().conn)
                .await?;
            held.disarm();
            Ok(())
        })
        .await
        .map_err(task_failed)?
    }
}

fn group_failed(reason: String) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the write was not committed: {reason}"
    )))
}

impl Deref for WriteTx<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self.held.as_ref().and_then(|held| held.open.as_ref()) {
            Some(open) => &open.conn,
            None => unreachable!("a write transaction is used after it ended"),
        }
    }
}

impl DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self.held.as_mut() {
            Some(held) => &mut held.open().conn,
            None => unreachable!("a write transaction is used after it ended"),
        }
    }
}
