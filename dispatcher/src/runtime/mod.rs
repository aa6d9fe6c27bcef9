//! Background loops: offer expiry and cascade, dispatch retries, the diagnosis queue
//! (claim lapse and the fallback to dispatch), position flushes, index
//! rebuilds, provider records and housekeeping. Each loop reads "now" from the injected
//! clock, so tests drive them with manual time and a short period.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use domain::Clock;
use domain::ports::Store;
use tokio::task::JoinHandle;

use crate::api::state::Limits;
use crate::config::Settings;
use crate::services::cascade::OfferCascade;
use crate::services::diagnosis::DiagnosisDesk;
use crate::services::fleet_ingest::FleetRegistry;
use crate::services::intake::Intake;
use crate::services::tracking::Tracking;

/// How far back provider records reach.
const RECORD_WINDOW_DAYS: i64 = 30;

/// What the background loops drive: the services, and storage for housekeeping.
pub struct Duties {
    /// Storage (purges).
    pub store: Arc<dyn Store>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Intake (cases nobody triaged).
    pub intake: Arc<Intake>,
    /// The offer cascade (expiry, retries, provider records).
    pub cascade: Arc<OfferCascade>,
    /// The diagnosis desk (rules, claim lapse, fallback).
    pub diagnosis: Arc<DiagnosisDesk>,
    /// The fleet (position flush, index rebuild).
    pub registry: Arc<FleetRegistry>,
    /// Tracking (delay rules, trajectory flush).
    pub tracking: Arc<Tracking>,
    /// The HTTP rate limits (forgetting idle clients).
    pub limits: Arc<Limits>,
}

/// Starts every loop; abort the handles to stop them.
pub fn spawn_all(duties: &Duties, settings: &Settings) -> Vec<JoinHandle<()>> {
    let mut loops = Vec::new();

    let cascade = duties.cascade.clone();
    loops.push(every(
        Duration::from_millis(settings.offer_sweep_ms),
        "offer expiry",
        move || {
            let cascade = cascade.clone();
            async move {
                cascade
                    .expire_due()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    ));

    let (intake, cascade) = (duties.intake.clone(), duties.cascade.clone());
    let retry_every = Duration::from_secs((settings.dispatch_retry_s / 2).max(1));
    loops.push(every(retry_every, "dispatch retry", move || {
        let (intake, cascade) = (intake.clone(), cascade.clone());
        async move {
            intake.retry_untriaged().await.map_err(|e| e.to_string())?;
            cascade
                .retry_waiting()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }));

    let desk = duties.diagnosis.clone();
    loops.push(every(
        Duration::from_millis(settings.diagnosis_sweep_ms),
        "diagnosis queue",
        move || {
            let desk = desk.clone();
            async move {
                desk.refresh_rules().await.map_err(|e| e.to_string())?;
                desk.lapse_expired().await.map_err(|e| e.to_string())?;
                desk.fall_back_due().await.map_err(|e| e.to_string())?;
                Ok(())
            }
        },
    ));

    let registry = duties.registry.clone();
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

    let registry = duties.registry.clone();
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

    let store = duties.store.clone();
    let cascade = duties.cascade.clone();
    let clock = duties.clock.clone();
    loops.push(every(
        Duration::from_secs(60),
        "provider records",
        move || {
            let (store, cascade, clock) = (store.clone(), cascade.clone(), clock.clone());
            async move {
                let since = clock.now() - chrono::Duration::days(RECORD_WINDOW_DAYS);
                let records = store
                    .provider_records(since)
                    .await
                    .map_err(|e| e.to_string())?;
                cascade.scores().refresh(&records);
                Ok(())
            }
        },
    ));

    let tracking = duties.tracking.clone();
    loops.push(every(
        Tracking::tick_period(settings),
        "delay rules",
        move || {
            let tracking = tracking.clone();
            async move {
                tracking.tick().await;
                Ok(())
            }
        },
    ));

    let tracking = duties.tracking.clone();
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

    let (store, clock, limits) = (
        duties.store.clone(),
        duties.clock.clone(),
        duties.limits.clone(),
    );
    let idempotency_ttl = chrono::Duration::seconds(
        i64::try_from(settings.idempotency_ttl_s).unwrap_or(i64::MAX / 2_000_000),
    );
    let retention =
        chrono::Duration::days(i64::try_from(settings.trajectory_retention_days).unwrap_or(36_500));
    loops.push(every(
        Duration::from_secs(settings.sweep_interval_s.max(1)),
        "housekeeping",
        move || {
            let (store, clock, limits) = (store.clone(), clock.clone(), limits.clone());
            async move {
                let now = clock.now();
                store
                    .purge_expired(now, now - idempotency_ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                store
                    .purge_case_fixes(now - retention)
                    .await
                    .map_err(|e| e.to_string())?;
                limits.forget_idle_clients();
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
