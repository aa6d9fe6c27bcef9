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
//! Writes on a request's critical path (a new case with its first offer, an offer) take
//! the *urgent lane*: they get the connection before writes that nobody waits for
//! (position flushes, job steps), and a group holding one is committed before them too.
//! A normal write steps aside for at most 20 ms, so it is delayed, not starved. An urgent
//! write that no other urgent write waits behind commits its group itself, in the same
//! call as its `RELEASE` (the writes released into the group before it are committed with
//! it); one that others wait behind leaves the commit to the last of them.
//!
//! Every call on the connection is a trip to its thread and back, and on a busy machine
//! each trip can wait for a CPU: a group opens with `BEGIN; SAVEPOINT w` in one call, and
//! the connection stays with the writer between groups (a connection handed back to its
//! pool is pinged, one more trip in front of the next group).
//!
//! Reads on the reader pool see a write only after its group committed, as they see a
//! plain transaction only after its commit; a later write of the same group sees the
//! earlier ones, as it would had they committed first.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

/// Seconds a write waited for the writer connection (its turn, and its savepoint).
pub const WRITER_WAIT: &str = "rescue_sqlite_writer_wait_seconds";
/// Seconds a write held the writer connection (its statements).
pub const WRITER_HOLD: &str = "rescue_sqlite_writer_hold_seconds";
/// Seconds a released write waited for its group's commit.
pub const COMMIT_WAIT: &str = "rescue_sqlite_commit_wait_seconds";
/// Seconds a group's `COMMIT` took (the fsync under `synchronous = full`).
pub const COMMIT_TIME: &str = "rescue_sqlite_commit_seconds";

/// How a group ended: `None` while it is open, then the commit's outcome.
type Outcome = Option<Result<(), String>>;

/// The writer connection while a group is open.
struct Open {
    conn: SqliteConnection,
    /// Writes released into the group so far.
    writes: u64,
    /// Told the group's outcome; each write of the group holds a receiver.
    outcome: watch::Sender<Outcome>,
    /// A write was abandoned (its future dropped) inside its savepoint: the next user
    /// rolls it back before doing anything else.
    abandoned: bool,
}

/// The writer slot: the open group, or between groups the connection alone.
///
/// The connection stays here between groups instead of going back to its pool: sqlx pings
/// a connection handed back to a pool (one more trip to the connection's thread), and the
/// next group's `BEGIN` would wait for that ping.
#[derive(Default)]
struct Slot {
    idle: Option<SqliteConnection>,
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
            .execute(&mut open.conn)
            .await
        {
            Ok(_) => open.abandoned = false,
            Err(error) => self.fail(format!("rolling back an abandoned write failed: {error}")),
        }
    }

    /// Ends the open group without committing it: its writes are lost and told so, and
    /// the connection is closed (SQLite rolls back what it had not committed).
    fn fail(&mut self, reason: String) {
        if let Some(open) = self.open.take() {
            tracing::error!(%reason, "SQLite write group failed");
            // Dropped, the connection is closed, and SQLite rolls back what it had not
            // committed; the next write opens a new one.
            drop(open.conn);
            open.outcome.send_replace(Some(Err(reason)));
        }
    }
}

/// How long a normal write keeps stepping aside for urgent work, from the first time it
/// reached the front, before it takes its turn regardless. A bound in time, not in turns:
/// under a stream of urgent writes one turn round the queue can take long, and a count of
/// turns let a job step wait out the acquire timeout behind 50 clients creating cases.
const STEP_ASIDE_BUDGET: Duration = Duration::from_millis(20);
/// How long a write that stepped aside waits before it queues again.
const STEP_ASIDE_PAUSE: Duration = Duration::from_millis(1);

/// Who may take the writer connection next: urgent writes before the others.
#[derive(Debug, Default)]
struct Lanes {
    /// Urgent writes (and commits of groups holding one) waiting for the connection.
    urgent_waiting: std::sync::atomic::AtomicUsize,
    /// The open group holds an urgent write: commit it urgently.
    urgent_group: std::sync::atomic::AtomicBool,
}

/// Counts an urgent waiter until dropped (taken the connection, or given up).
struct UrgentWaiter<'a>(&'a Lanes);

impl Drop for UrgentWaiter<'_> {
    fn drop(&mut self) {
        self.0.urgent_waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lanes {
    /// Urgent work is waiting: an urgent write, or the commit of a group holding one.
    fn urgent_pending(&self) -> bool {
        self.urgent_waiting.load(Ordering::Acquire) > 0 || self.urgent_group.load(Ordering::Acquire)
    }

    /// Takes the slot for a write. The slot's queue is first come, first served; a normal
    /// write that reaches the front while urgent work is pending hands the slot on and
    /// queues again, behind it, for at most [`STEP_ASIDE_BUDGET`] (so normal writes that
    /// step aside may swap places among themselves).
    async fn lock(&self, slot: &Arc<Mutex<Slot>>, urgent: bool) -> OwnedMutexGuard<Slot> {
        if urgent {
            self.urgent_waiting.fetch_add(1, Ordering::AcqRel);
            let _waiter = UrgentWaiter(self);
            return Arc::clone(slot).lock_owned().await;
        }
        self.lock_unless(slot, || false).await
    }

    /// Takes the slot for the committer: at once when the open group holds an urgent
    /// write (looked at every time it reaches the front), otherwise as a normal write.
    async fn lock_for_commit(&self, slot: &Arc<Mutex<Slot>>) -> OwnedMutexGuard<Slot> {
        self.lock_unless(slot, || self.urgent_group.load(Ordering::Acquire))
            .await
    }

    async fn lock_unless(
        &self,
        slot: &Arc<Mutex<Slot>>,
        urgent: impl Fn() -> bool,
    ) -> OwnedMutexGuard<Slot> {
        // Counted from the first time it stepped aside, in real time, not tokio's: under
        // paused test time the budget must still run out.
        let mut stepping_aside_since: Option<std::time::Instant> = None;
        loop {
            let guard = Arc::clone(slot).lock_owned().await;
            let budget_spent =
                stepping_aside_since.is_some_and(|since| since.elapsed() >= STEP_ASIDE_BUDGET);
            if urgent() || budget_spent || !self.urgent_pending() {
                return guard;
            }
            stepping_aside_since.get_or_insert_with(std::time::Instant::now);
            drop(guard);
            // Out of the way for a moment rather than round the queue at once: the urgent
            // writer or the committer gets to run (on a one-thread runtime it could not
            // otherwise), and stepping aside costs no CPU.
            tokio::time::sleep(STEP_ASIDE_PAUSE).await;
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
    lanes: Arc<Lanes>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Slot")
            .field("open", &self.open.is_some())
            .field("idle", &self.idle.is_some())
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
            lanes: Arc::default(),
        });
        tokio::spawn(commit_groups(
            Arc::downgrade(&writer.slot),
            Arc::clone(&writer.committer),
            Arc::clone(&writer.counters),
            Arc::clone(&writer.lanes),
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

    /// Closes the writer's connection, once the write or commit that holds it is done. A
    /// write after this opens a new one.
    pub(crate) async fn close(&self) {
        let idle = self.slot.lock().await.idle.take();
        if let Some(conn) = idle
            && let Err(error) = sqlx::Connection::close(conn).await
        {
            tracing::warn!(%error, "closing the SQLite writer connection failed");
        }
    }

    /// Starts a write: waits its turn for the connection (at most the acquire timeout),
    /// joins the open group or opens one, and sets its savepoint.
    ///
    /// The statements that open and close groups and savepoints run in tasks of their
    /// own, so a caller that goes away (a cancelled request) cannot leave the connection
    /// half way through one of them.
    pub(crate) async fn begin(&self, urgent: bool) -> Result<WriteTx<'_>, sqlx::Error> {
        let slot = Arc::clone(&self.slot);
        let pool = self.pool.clone();
        let committer = Arc::clone(&self.committer);
        let lanes = Arc::clone(&self.lanes);
        let acquire_timeout = self.acquire_timeout;
        let asked = std::time::Instant::now();
        let held = tokio::spawn(async move {
            let mut slot = tokio::time::timeout(acquire_timeout, lanes.lock(&slot, urgent))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?;
            slot.clean_up().await;
            let saved = match slot.open.as_mut() {
                Some(open) => sqlx::raw_sql("SAVEPOINT w")
                    .execute(&mut open.conn)
                    .await
                    .map(drop),
                // A new group opens with the write's savepoint in the same call: one trip
                // to the connection's thread instead of two.
                None => {
                    let mut conn = match slot.idle.take() {
                        Some(conn) => conn,
                        None => pool.acquire().await?.detach(),
                    };
                    if let Err(error) = sqlx::raw_sql("BEGIN; SAVEPOINT w").execute(&mut conn).await
                    {
                        // Dropped: closed, with whatever it had begun.
                        drop(conn);
                        return Err(error);
                    }
                    slot.open = Some(Open {
                        conn,
                        writes: 0,
                        outcome: watch::channel(None).0,
                        abandoned: false,
                    });
                    Ok(())
                }
            };
            match saved {
                Ok(()) => {
                    metrics::histogram!(WRITER_WAIT, "lane" => lane_name(urgent))
                        .record(asked.elapsed().as_secs_f64());
                    Ok(Held {
                        slot: Some(slot),
                        committer,
                        since: std::time::Instant::now(),
                        urgent: urgent.then_some(lanes),
                    })
                }
                Err(error) => {
                    drop(slot);
                    committer.notify_one();
                    Err(error)
                }
            }
        })
        .await
        .map_err(task_failed)??;
        Ok(WriteTx {
            held: Some(held),
            counters: Arc::clone(&self.counters),
            _writer: PhantomData,
        })
    }
}

/// The `lane` label of the writer metrics.
fn lane_name(urgent: bool) -> &'static str {
    if urgent { "urgent" } else { "normal" }
}

fn task_failed(error: tokio::task::JoinError) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(format!(
        "the SQLite writer task failed: {error}"
    )))
}

/// Commits each open group when its turn for the connection comes.
async fn commit_groups(
    slot: Weak<Mutex<Slot>>,
    committer: Arc<Notify>,
    counters: Arc<Counters>,
    lanes: Arc<Lanes>,
) {
    loop {
        committer.notified().await;
        let Some(slot) = slot.upgrade() else {
            return;
        };
        let mut slot = lanes.lock_for_commit(&slot).await;
        lanes.urgent_group.store(false, Ordering::Release);
        slot.clean_up().await;
        let Some(mut open) = slot.open.take() else {
            continue;
        };
        let started = std::time::Instant::now();
        match sqlx::raw_sql("COMMIT").execute(&mut open.conn).await {
            Ok(_) => {
                metrics::histogram!(COMMIT_TIME).record(started.elapsed().as_secs_f64());
                counters.groups.fetch_add(1, Ordering::Relaxed);
                counters.writes.fetch_add(open.writes, Ordering::Relaxed);
                open.outcome.send_replace(Some(Ok(())));
                slot.idle = Some(open.conn);
            }
            Err(error) => {
                slot.open = Some(open);
                slot.fail(format!("commit failed: {error}"));
            }
        }
    }
}

/// The connection held by one write inside its savepoint (the writer slot, with its group
/// open). Dropped while armed (the write neither committed nor rolled back), it marks the
/// savepoint for rollback by the next user of the connection.
struct Held {
    slot: Option<OwnedMutexGuard<Slot>>,
    committer: Arc<Notify>,
    /// When the write got the connection.
    since: std::time::Instant,
    /// The lanes, for an urgent write: its group is committed urgently.
    urgent: Option<Arc<Lanes>>,
}

impl Held {
    fn open(&mut self) -> &mut Open {
        match self.slot.as_mut().and_then(|slot| slot.open.as_mut()) {
            Some(open) => open,
            None => unreachable!("a held connection is used after it was let go"),
        }
    }

    /// Lets the connection go with the savepoint closed.
    fn disarm(mut self) {
        metrics::histogram!(WRITER_HOLD).record(self.since.elapsed().as_secs_f64());
        if let Some(slot) = self.slot.take() {
            drop(slot);
            self.committer.notify_one();
        }
    }

    /// Closes the savepoint and commits the group at once, in one call, instead of
    /// handing the commit to the committer: for an urgent write that no other urgent
    /// write waits behind (a later one would carry it in its own commit). The writes
    /// released into the group before it are committed with it and told so. Fails the
    /// whole group when either statement fails, as a failed commit does.
    async fn release_and_commit(mut self, counters: &Counters) -> Result<(), sqlx::Error> {
        let (Some(mut slot), Some(lanes)) = (self.slot.take(), self.urgent.take()) else {
            unreachable!("an urgent write's held connection is used after it was let go")
        };
        let Some(mut open) = slot.open.take() else {
            unreachable!("a held connection has no open group")
        };
        let started = std::time::Instant::now();
        let result = sqlx::raw_sql("RELEASE w; COMMIT")
            .execute(&mut open.conn)
            .await;
        metrics::histogram!(WRITER_HOLD).record(self.since.elapsed().as_secs_f64());
        lanes.urgent_group.store(false, Ordering::Release);
        let outcome = match result {
            Ok(_) => {
                metrics::histogram!(COMMIT_TIME).record(started.elapsed().as_secs_f64());
                counters.groups.fetch_add(1, Ordering::Relaxed);
                counters
                    .writes
                    .fetch_add(open.writes + 1, Ordering::Relaxed);
                open.outcome.send_replace(Some(Ok(())));
                slot.idle = Some(open.conn);
                Ok(())
            }
            Err(error) => {
                let reason = format!("commit failed: {error}");
                slot.open = Some(open);
                slot.fail(reason.clone());
                Err(group_failed(reason))
            }
        };
        drop(slot);
        // Writes queued behind the slot go on; a committer woken for this group finds it
        // closed.
        self.committer.notify_one();
        outcome
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            if let Some(open) = slot.open.as_mut() {
                open.abandoned = true;
            }
            drop(slot);
            self.committer.notify_one();
        }
    }
}

/// One logical write transaction: a savepoint in the open group. Dereferences to the
/// connection, like `sqlx::Transaction`. Dropped without `commit` or `rollback` (an
/// early return or a cancelled request), its statements are rolled back.
pub(crate) struct WriteTx<'a> {
    held: Option<Held>,
    /// The writer's counters, for a write that commits its group itself.
    counters: Arc<Counters>,
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
        let lane = lane_name(held.urgent.is_some());
        // The last urgent write of a burst commits its group itself.
        if held
            .urgent
            .as_ref()
            .is_some_and(|lanes| lanes.urgent_waiting.load(Ordering::Acquire) == 0)
        {
            let counters = Arc::clone(&self.counters);
            let released = std::time::Instant::now();
            let committed = tokio::spawn(async move { held.release_and_commit(&counters).await })
                .await
                .map_err(task_failed)?;
            metrics::histogram!(COMMIT_WAIT, "lane" => lane)
                .record(released.elapsed().as_secs_f64());
            return committed;
        }
        let mut outcome = tokio::spawn(async move {
            let open = held.open();
            sqlx::raw_sql("RELEASE w").execute(&mut open.conn).await?;
            open.writes += 1;
            let outcome = open.outcome.subscribe();
            if let Some(lanes) = &held.urgent {
                lanes.urgent_group.store(true, Ordering::Release);
            }
            held.disarm();
            Ok::<_, sqlx::Error>(outcome)
        })
        .await
        .map_err(task_failed)??;
        let released = std::time::Instant::now();
        let outcome = outcome.wait_for(Option::is_some).await;
        metrics::histogram!(COMMIT_WAIT, "lane" => lane).record(released.elapsed().as_secs_f64());
        match outcome {
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
                .execute(&mut held.open().conn)
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
        match self
            .held
            .as_ref()
            .and_then(|held| held.slot.as_ref())
            .and_then(|slot| slot.open.as_ref())
        {
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    async fn writer(dir: &tempfile::TempDir) -> Arc<GroupWriter> {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("lanes.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql("CREATE TABLE log (n INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        GroupWriter::new(pool, Duration::from_secs(10))
    }

    #[tokio::test]
    async fn urgent_writes_get_the_connection_before_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        // A write holds the connection while others queue: four normal, then one urgent.
        let first = writer.begin(false).await.unwrap();
        let mut queued = Vec::new();
        for n in 1..=5_i64 {
            let urgent = n == 5;
            let writer = Arc::clone(&writer);
            queued.push(tokio::spawn(async move {
                let mut tx = writer.begin(urgent).await.unwrap();
                sqlx::query("INSERT INTO log (n) VALUES ($1)")
                    .bind(n)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }));
            // Each is queued before the next is asked for.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        first.commit().await.unwrap();
        for write in queued {
            write.await.unwrap();
        }
        let order: Vec<(i64,)> = sqlx::query_as("SELECT n FROM log ORDER BY rowid")
            .fetch_all(writer.pool())
            .await
            .unwrap();
        let order: Vec<i64> = order.into_iter().map(|(n,)| n).collect();
        assert_eq!(order[0], 5, "the urgent write goes first: {order:?}");
        // Normal writes that stepped aside may swap places among themselves (one that
        // steps aside for the urgent write's commit queues again behind the others); none
        // is lost.
        let mut rest = order[1..].to_vec();
        rest.sort_unstable();
        assert_eq!(rest, [1, 2, 3, 4], "every normal write is in: {order:?}");
    }

    #[tokio::test]
    async fn a_group_holding_an_urgent_write_is_committed_before_queued_writes() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let reader = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().filename(dir.path().join("lanes.db")))
            .await
            .unwrap();
        let first = writer.begin(false).await.unwrap();
        // Four slow normal writes queue, then an urgent one.
        let mut queued = Vec::new();
        for n in 1..=4_i64 {
            let writer = Arc::clone(&writer);
            queued.push(tokio::spawn(async move {
                let mut tx = writer.begin(false).await.unwrap();
                sqlx::query("INSERT INTO log (n) VALUES ($1)")
                    .bind(n)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                tx.commit().await.unwrap();
            }));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let urgent = {
            let writer = Arc::clone(&writer);
            let reader = reader.clone();
            tokio::spawn(async move {
                let mut tx = writer.begin(true).await.unwrap();
                sqlx::query("INSERT INTO log (n) VALUES (5)")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                // Committed: what a reader sees now is what the urgent write's group held.
                let (visible,): (i64,) = sqlx::query_as("SELECT count(*) FROM log")
                    .fetch_one(&reader)
                    .await
                    .unwrap();
                visible
            })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        first.commit().await.unwrap();
        let visible = urgent.await.unwrap();
        for write in queued {
            write.await.unwrap();
        }
        assert_eq!(
            visible, 1,
            "the urgent write was committed without waiting for the normal writes queued before it"
        );
    }

    #[tokio::test]
    async fn a_normal_write_steps_aside_only_so_often() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        // Urgent writes that never stop coming (here: a waiter that never leaves) cannot
        // hold a normal write back for ever: it goes after stepping aside a few times.
        writer.lanes.urgent_waiting.fetch_add(1, Ordering::AcqRel);
        let mut tx = tokio::time::timeout(Duration::from_secs(5), writer.begin(false))
            .await
            .expect("the normal write went ahead")
            .unwrap();
        sqlx::query("INSERT INTO log (n) VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }

    async fn insert(tx: &mut WriteTx<'_>, n: i64) {
        sqlx::query("INSERT INTO log (n) VALUES ($1)")
            .bind(n)
            .execute(&mut **tx)
            .await
            .unwrap();
    }

    /// Starts an urgent write of `n` and returns once it waits for the connection.
    async fn queue_urgent_insert(
        writer: &Arc<GroupWriter>,
        n: i64,
    ) -> tokio::task::JoinHandle<Result<(), sqlx::Error>> {
        let queued = {
            let writer = Arc::clone(writer);
            tokio::spawn(async move {
                let mut tx = writer.begin(true).await.unwrap();
                insert(&mut tx, n).await;
                tx.commit().await
            })
        };
        while writer.lanes.urgent_waiting.load(Ordering::Acquire) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        queued
    }

    async fn logged(writer: &GroupWriter) -> Vec<i64> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT n FROM log ORDER BY n")
            .fetch_all(writer.pool())
            .await
            .unwrap();
        rows.into_iter().map(|(n,)| n).collect()
    }

    #[tokio::test]
    async fn an_urgent_write_commits_the_writes_released_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let mut normal = writer.begin(false).await.unwrap();
        insert(&mut normal, 1).await;
        // The urgent write queues for the connection before the normal one is released,
        // so it gets the connection before the committer does.
        let urgent = queue_urgent_insert(&writer, 2).await;
        normal.commit().await.unwrap();
        urgent.await.unwrap().unwrap();
        assert_eq!(logged(&writer).await, [1, 2]);
        assert_eq!(
            writer.stats(),
            CommitStats {
                groups: 1,
                writes: 2
            },
            "one commit for both"
        );
    }

    #[tokio::test]
    async fn urgent_writes_that_queue_together_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        let mut first = writer.begin(true).await.unwrap();
        insert(&mut first, 1).await;
        let second = queue_urgent_insert(&writer, 2).await;
        // The first leaves its commit to the second, which waits behind it.
        first.commit().await.unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(logged(&writer).await, [1, 2]);
        assert_eq!(
            writer.stats(),
            CommitStats {
                groups: 1,
                writes: 2
            }
        );
        // Alone, an urgent write commits at once.
        let mut alone = writer.begin(true).await.unwrap();
        insert(&mut alone, 3).await;
        alone.commit().await.unwrap();
        assert_eq!(logged(&writer).await, [1, 2, 3]);
        assert_eq!(writer.stats().groups, 2);
    }

    #[tokio::test]
    async fn a_failed_commit_by_an_urgent_write_fails_its_whole_group_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir).await;
        // A deferred foreign key is checked at COMMIT, not at RELEASE: the normal write's
        // dangling reference makes the urgent write's COMMIT of the group fail.
        // (sqlx turns foreign keys on for every connection.)
        sqlx::raw_sql(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .execute(writer.pool())
        .await
        .unwrap();
        let mut dangling = writer.begin(false).await.unwrap();
        sqlx::raw_sql("INSERT INTO child (parent) VALUES (7)")
            .execute(&mut *dangling)
            .await
            .unwrap();
        let urgent = queue_urgent_insert(&writer, 1).await;
        let normal = dangling.commit().await;
        let urgent = urgent.await.unwrap();
        assert!(
            urgent.is_err(),
            "the urgent write was told its group failed"
        );
        assert!(normal.is_err(), "so was the write released before it");
        assert!(logged(&writer).await.is_empty(), "neither is stored");
        let (children,): (i64,) = sqlx::query_as("SELECT count(*) FROM child")
            .fetch_one(writer.pool())
            .await
            .unwrap();
        assert_eq!(children, 0);
        // The failed group's connection was closed; the next write opens another.
        let mut after = writer.begin(true).await.unwrap();
        insert(&mut after, 2).await;
        after.commit().await.unwrap();
        assert_eq!(logged(&writer).await, [2]);
    }
}
