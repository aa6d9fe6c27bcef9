//! The agents' live feed. Every change to every case is an event in the database's
//! append-only log; the [`EventTail`] reads the log in id order and broadcasts each event
//! to this instance's subscribers (the agents' SSE streams, the tracker). Reading the log
//! rather than passing events around in memory makes every instance see every event,
//! whichever instance wrote it, and gives reconnecting agents an exact replay by id.
//!
//! PostgreSQL hands out ids before transactions commit, so a later id can become visible
//! before an earlier one. The tail delivers strictly in id order: it holds back behind a
//! gap until the missing event appears or, after [`GAP_TIMEOUT`], treats it as a rolled
//! back transaction. So "everything up to id N" is a true statement for subscribers, and
//! `Last-Event-ID: N` replays exactly what a client missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use domain::Event;
use domain::ports::Store;
use tokio::sync::broadcast;

/// How long the tail waits for a missing id before treating it as rolled back.
pub const GAP_TIMEOUT: Duration = Duration::from_secs(2);

/// Events read per poll.
const BATCH: u32 = 1000;

/// Reads the event log in order and broadcasts it.
pub struct EventTail {
    store: Arc<dyn Store>,
    sender: broadcast::Sender<Arc<Event>>,
    watermark: AtomicI64,
}

impl EventTail {
    /// A tail starting after the newest event in the log.
    pub async fn start_at_end(
        store: Arc<dyn Store>,
    ) -> Result<EventTail, domain::ports::StoreError> {
        let last = store.last_event_id().await?;
        let (sender, _) = broadcast::channel(16_384);
        Ok(EventTail {
            store,
            sender,
            watermark: AtomicI64::new(last),
        })
    }

    /// Every event from now on, in id order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// The id up to which every event has been broadcast.
    pub fn watermark(&self) -> i64 {
        self.watermark.load(Ordering::Acquire)
    }

    /// The store the tail reads (for replays).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Polls the log every `period` until aborted.
    pub fn spawn(self: &Arc<Self>, period: Duration) -> tokio::task::JoinHandle<()> {
        let tail = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut gap_seen_at: Option<Instant> = None;
            let mut failing = false;
            loop {
                ticker.tick().await;
                match tail.poll(&mut gap_seen_at).await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("event tail recovered");
                    }
                    Ok(_) => {}
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(error = %error, "reading the event log failed; retrying");
                    }
                    Err(_) => {}
                }
            }
        })
    }

    /// Reads what is new and broadcasts it in order; returns how many were delivered.
    async fn poll(
        &self,
        gap_seen_at: &mut Option<Instant>,
    ) -> Result<usize, domain::ports::StoreError> {
        let mut delivered = 0;
        loop {
            let watermark = self.watermark();
            let events = self.store.events_after(watermark, BATCH).await?;
            let fetched = events.len();
            let mut expected = watermark + 1;
            for event in events {
                if event.id != expected {
                    let since = *gap_seen_at.get_or_insert_with(Instant::now);
                    if since.elapsed() < GAP_TIMEOUT {
                        return Ok(delivered);
                    }
                    tracing::debug!(
                        missing_from = expected,
                        missing_to = event.id - 1,
                        "skipping ids of rolled-back transactions"
                    );
                }
                *gap_seen_at = None;
                expected = event.id + 1;
                self.watermark.store(event.id, Ordering::Release);
                // Nobody listening is fine.
                let _ = self.sender.send(Arc::new(event));
                delivered += 1;
            }
            if fetched < BATCH as usize {
                return Ok(delivered);
            }
        }
    }
}
