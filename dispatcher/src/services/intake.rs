//! Intake: a rescue request becomes a case, triaged at once.
//!
//! [`Intake::open_case`] is the whole use case behind `POST /v1/cases`: triage decides
//! (safety first) whether the case waits for a phone expert or needs a vehicle, and for a
//! vehicle the best few candidates are proposed as first offers. The case, its `created`
//! and `triaged` events, the idempotency record and the ticket or the first offer are then
//! written in one commit, so a request is answered with its offer already out. What the
//! commit could not do is finished in the background: a case whose candidates were all
//! claimed meanwhile goes to the offer cascade, one that the store did not triage is taken
//! in by case id ([`Intake::take_in`], also the retry sweep's way in).

use std::sync::Arc;
use std::time::Instant;

use domain::ports::{
    CreateCaseOutcome, IdempotencyClaim, Store, StoreError, TriageWrite, TriagedCase,
};
use domain::{Actor, Case, CaseId, Clock, EventKind, NewCase, NewEvent, SafetyReport};

use crate::services::cascade::{DispatchOutcome, OfferCascade};
use crate::services::diagnosis::{self, DiagnosisDesk, Triaged};
use crate::telemetry::{CASES_CREATED, DISPATCH_LATENCY};

/// A request for help, parsed and authorized.
#[derive(Debug, Clone)]
pub struct CaseRequest {
    /// The validated request.
    pub case: NewCase,
    /// What the requester said about safety (accident, injury …).
    pub safety: SafetyReport,
    /// Who asks: the app, or an agent for a hotline caller.
    pub actor: Actor,
    /// Makes a retry safe, when the client sent a key.
    pub idempotency: Option<IdempotencyKey>,
}

/// A client's idempotency key with what it must match.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Whose key it is (`app`, `agent:<id>`): keys of different callers never collide.
    pub scope: String,
    /// The key as sent.
    pub key: String,
    /// SHA-256 of the canonical request body.
    pub request_hash: [u8; 32],
}

/// What became of a request.
#[derive(Debug, Clone)]
pub enum Opened {
    /// A new case.
    Created(Box<Case>),
    /// A retry of an earlier request with the same key and body: nothing was created;
    /// this is the case the first request created, as it was answered then.
    Replayed(Box<Case>),
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The key was used before with a different body.
    #[error("this Idempotency-Key was used with a different request body")]
    KeyReused,
    /// The stored replay of the first response could not be read.
    #[error("the stored response of the first request is unreadable: {0}")]
    CorruptReplay(serde_json::Error),
    /// Storage refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Intake (see the module docs).
pub struct Intake {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    desk: Arc<DiagnosisDesk>,
    cascade: Arc<OfferCascade>,
}

impl Intake {
    /// Intake over the diagnosis desk (triage) and the offer cascade (candidates, offers).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        desk: Arc<DiagnosisDesk>,
        cascade: Arc<OfferCascade>,
    ) -> Intake {
        Intake {
            store,
            clock,
            desk,
            cascade,
        }
    }

    /// Opens a case for a request (see the module docs).
    #[tracing::instrument(skip_all, fields(channel = %request.case.channel))]
    pub async fn open_case(self: &Arc<Self>, request: CaseRequest) -> Result<Opened, IntakeError> {
        let started = Instant::now();
        let now = domain::time::to_storage_precision(self.clock.now());
        let case = request.case.open(CaseId::new_v7(), now);
        let safety = request.safety;
        let created = NewEvent::new(
            EventKind::Created,
            request.actor,
            now,
            serde_json::json!({
                "channel": case.channel,
                "service": case.service,
                "tier": case.tier,
                "fault_category": case.fault.category,
                "symptoms": case.fault.symptoms,
                "road_kind": case.location.road_kind,
                "powertrain": case.customer.powertrain,
                "safety": safety,
            }),
        );
        // The stored replay leaves the customer token out; it is derived again from the
        // case id.
        let request_hash = request.idempotency.as_ref().map(|key| key.request_hash);
        let claim = request.idempotency.map(|key| IdempotencyClaim {
            scope: key.scope,
            key: key.key,
            request_hash: key.request_hash,
            response: serde_json::json!({ "case": case }),
            created_at: now,
        });
        // Triage is decided now and written with the case, and so is the first offer when
        // the case needs a vehicle: one commit from request to offer.
        let cascade = &self.cascade;
        let mut triage = self
            .desk
            .decide(&case, diagnosis::safety_flags(&safety), |case| {
                cascade.expected_eta_s(case)
            });
        if let TriageWrite::Dispatch { offers, .. } = &mut triage.write {
            *offers = cascade.first_offers(&case);
        }
        let written = match self
            .store
            .create_triaged_case(&case, &created, claim.as_ref(), &triage.write)
            .await
        {
            // A first offer that cannot be written (a vehicle claimed by a case of another
            // instance in a way the claim did not see) must not cost the case: write it
            // without, and leave the offer to the cascade.
            Err(error) if triage.has_offers() => {
                tracing::warn!(case_id = %case.id, error = %error, "writing the first offer with the case failed; creating the case alone");
                triage.drop_offers();
                self.store
                    .create_triaged_case(&case, &created, claim.as_ref(), &triage.write)
                    .await?
            }
            other => other?,
        };
        match written {
            (CreateCaseOutcome::Created(case), triaged) => {
                metrics::counter!(CASES_CREATED, "channel" => case.channel.as_str()).increment(1);
                tracing::info!(case_id = %case.id, channel = %case.channel, service = %case.service, "case created");
                match triaged {
                    Some(TriagedCase::Offered { offer, .. }) => {
                        triage.record(case.id);
                        cascade.offered_at_intake(&offer, started);
                    }
                    Some(TriagedCase::Dispatching(dispatching)) => {
                        triage.record(case.id);
                        cascade.spawn_dispatch_new(*dispatching, started);
                    }
                    Some(TriagedCase::Queued(ticket)) => {
                        triage.record(case.id);
                        diagnosis::count_ticket("queued", &ticket);
                    }
                    // The store triages every case it creates; should one come back
                    // without, take it in by case id.
                    None => self.spawn_take_in(case.id),
                }
                Ok(Opened::Created(case))
            }
            (
                CreateCaseOutcome::Replayed {
                    case_id,
                    request_hash: first_hash,
                    response,
                },
                _,
            ) => {
                if Some(first_hash) != request_hash {
                    return Err(IntakeError::KeyReused);
                }
                let case: Case = serde_json::from_value(response["case"].clone())
                    .map_err(IntakeError::CorruptReplay)?;
                tracing::info!(case_id = %case_id, "idempotent replay of case creation");
                Ok(Opened::Replayed(Box::new(case)))
            }
        }
    }

    /// Takes in a case that was stored without triage: triage decides (with the safety
    /// override first) whether it waits for a phone expert (`diagnosing`) or needs a
    /// vehicle, in which case it goes to `dispatching` and gets its first offer.
    #[tracing::instrument(skip_all, fields(case_id = %case_id))]
    pub async fn take_in(&self, case_id: CaseId) -> Result<DispatchOutcome, StoreError> {
        let started = Instant::now();
        let cascade = &self.cascade;
        let triaged = self
            .desk
            .triage(case_id, |case| cascade.expected_eta_s(case))
            .await?;
        match triaged {
            Triaged::Queued(_) => return Ok(DispatchOutcome::QueuedForDiagnosis),
            // Someone else took it in already.
            Triaged::AlreadyTriaged => return Ok(DispatchOutcome::NotDispatching),
            Triaged::Dispatch => {}
        }
        let outcome = cascade.dispatch(case_id).await?;
        if matches!(outcome, DispatchOutcome::Offered(_)) {
            metrics::histogram!(DISPATCH_LATENCY).record(started.elapsed().as_secs_f64());
        }
        Ok(outcome)
    }

    /// [`Intake::take_in`], in the background (the caller does not wait).
    pub fn spawn_take_in(self: &Arc<Self>, case_id: CaseId) {
        let intake = self.clone();
        tokio::spawn(async move {
            if let Err(error) = intake.take_in(case_id).await {
                tracing::warn!(case_id = %case_id, error = %error, "intake failed; the retry sweep will pick the case up");
            }
        });
    }

    /// Takes in the new cases nobody triaged (a crash between the write and the intake).
    pub async fn retry_untriaged(&self) -> Result<usize, StoreError> {
        let before = self.cascade.retry_cutoff();
        let untriaged = self.store.cases_awaiting_triage(before, 100).await?;
        for case_id in &untriaged {
            if let Err(error) = self.take_in(*case_id).await {
                tracing::warn!(case_id = %case_id, error = %error, "intake retry failed");
            }
        }
        Ok(untriaged.len())
    }
}
