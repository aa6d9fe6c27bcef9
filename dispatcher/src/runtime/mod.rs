//! Background loops: offer expiry and cascade, dispatch retries, the diagnosis queue
//! (claim lapse and the fallback to dispatch), position flushes, index
//! rebuilds, provider records and housekeeping. Each loop reads "now" from the injected
//! clock, so tests drive them with manual time and a short period.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::state::AppState;

/// How far back provider records reach.
const RECORD_WINDOW_DAYS: i64 = 30;

/// Starts every loop; abort the handles to stop them.
pub fn spawn_all(state: &AppState) -> Vec<JoinHandle<()>> {
    let settings = &state.config.settings;
    let mut loops = Vec::new();

    let dispatcher = state.dispatcher.clone();
    loops.push(every(
        Duration::from_millis(settings.offer_sweep_ms),
        "offer expiry",
        move || {
            let dispatcher = dispatcher.clone();
            async move {
                dispatcher
                    .expire_due()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    ));

    let dispatcher = state.dispatcher.clone();
    let retry_every = Duration::from_secs((settings.dispatch_retry_s / 2).max(1));
    loops.push(every(retry_every, "dispatch retry", move || {
        let dispatcher = dispatcher.clone();
        async move {
            dispatcher
                .retry_stuck()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }));

    let desk = state.diagnosis.clone();
    let dispatcher = state.dispatcher.clone();
    loops.push(every(
        Duration::from_millis(settings.diagnosis_sweep_ms),
        "diagnosis queue",
        move || {
            let (desk, dispatcher) = (desk.clone(), dispatcher.clone());
            async move {
                desk.refresh_rules().await.map_err(|e| e.to_string())?;
                desk.lapse_expired().await.map_err(|e| e.to_string())?;
                for case_id in desk.fall_back_due().await.map_err(|e| e.to_string())? {
                    if let Err(error) = dispatcher.dispatch(case_id).await {
                        tracing::warn!(case_id = %case_id, error = %error, "dispatch after the diagnosis wait failed; the retry sweep will pick it up");
                    }
                }
                Ok(())
            }
        },
    ));

    let registry = state.registry.clone();
    loops.push(every(
        Duration::from_millis(settings.fix_flush_ms),
        "position flush",
        move || {
            let registry = registry.clone();
            async move {
                registry
                    .flush()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    ));

    let registry = state.registry.clone();
    loops.push(every(
        Duration::from_secs(settings.index_rebuild_s.max(1)),
        "index rebuild",
        move || {
            let registry = registry.clone();
            async move {
                if registry.index().edits_since_rebuild() == 0 {
                    return Ok(());
                }
                let index = registry.index().clone();
                let report = tokio::task::spawn_blocking(move || index.rebuild())
                    .await
                    .map_err(|error| error.to_string())?;
                tracing::debug!(
                    vehicles = report.vehicles,
                    total_ms = report.total.as_millis() as u64,
                    "fleet index rebuilt"
                );
                Ok(())
            }
        },
    ));

    let store = state.store.clone();
    let dispatcher = state.dispatcher.clone();
    let clock = state.clock.clone();
    loops.push(every(
        Duration::from_secs(60),
        "provider records",
        move || {
            let (store, dispatcher, clock) = (store.clone(), dispatcher.clone(), clock.clone());
            async move {
                let since = clock.now() - chrono::Duration::days(RECORD_WINDOW_DAYS);
                let records = store
                    .provider_records(since)
                    .await
                    .map_err(|e| e.to_string())?;
                dispatcher.scores().refresh(&records);
                Ok(())
            }
        },
    ));

    let tracking = state.tracking.clone();
    loops.push(every(
        crate::tracking::Tracking::tick_period(settings),
        "delay rules",
        move || {
            let tracking = tracking.clone();
            async move {
                tracking.tick().await;
                Ok(())
            }
        },
    ));

    let tracking = state.tracking.clone();
    loops.push(every(
        Duration::from_secs(1),
        "trajectory flush",
        move || {
            let tracking = tracking.clone();
            async move {
                tracking
                    .flush()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    ));

    let housekeeping = state.clone();
    loops.push(every(
        Duration::from_secs(settings.sweep_interval_s.max(1)),
        "housekeeping",
        move || {
            let state = housekeeping.clone();
            async move {
                let now = state.clock.now();
                let ttl = chrono::Duration::seconds(
                    i64::try_from(state.config.settings.idempotency_ttl_s)
                        .unwrap_or(i64::MAX / 2_000_000),
                );
                state
                    .store
                    .purge_expired(now, now - ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                let retention = chrono::Duration::days(
                    i64::try_from(state.config.settings.trajectory_retention_days)
                        .unwrap_or(36_500),
                );
                state
                    .store
                    .purge_case_fixes(now - retention)
                    .await
                    .map_err(|e| e.to_string())?;
                state.limits.forget_idle_clients();
                Ok(())
            }
        },
    ));
    loops
}

/// Runs `work` every `period` (the first run immediately), logging failures without
/// stopping: a database outage must not end the loop.
fn every<F, Fut>(period: Duration, name: &'static str, work: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticker.tick().await;
            match work().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(task = name, "background task recovered");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(task = name, error = %error, "background task failed; retrying");
                }
                Err(_) => {}
            }
        }
    })
}
