//! The offer cascade: turns a case in `dispatching` into an offer, cascades on decline and
//! expiry, escalates when nobody takes the job, and carries out what providers and agents
//! do with offers and jobs (accept, decline, job status, manual assignment, re-dispatch,
//! cancel).
//!
//! Correctness does not depend on this code being the only one running: the claim of a
//! vehicle is a conditional update, a case can hold one pending offer, and a vehicle one
//! open offer or job (database constraints). Several instances, or two triggers for one
//! case in one instance, at worst lose a race and stop.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use domain::ports::{DispatchState, ManualAssignment, NewOffer, Store, StoreError};
use domain::{
    Actor, AlertKind, Case, CaseId, CaseStatus, Clock, EventKind, NewEvent, Offer, OfferId,
    OfferState, Severity, VehicleId, VehicleState,
};
use parking_lot::Mutex;

use crate::matching::{EtaModel, EtaOrigin, ProviderScores, RankedCandidate, rank};
use crate::services::alerts::Alerts;
use crate::services::fleet_ingest::FleetRegistry;
use crate::services::views::{OfferView, offer_view};
use crate::telemetry::DISPATCH_LATENCY;

/// Offers made and their outcomes, by `outcome` (`sent`, `accepted`, `declined`,
/// `expired`, `withdrawn`).
pub const OFFERS: &str = "rescue_offers_total";
/// Cases escalated to an agent, by `reason` (`attempts_exhausted`, `no_candidate`).
pub const ESCALATIONS: &str = "rescue_escalations_total";

/// Candidates a new case's own transaction tries to claim before it leaves the case to
/// the matcher: another case may hold the best, rarely the first three.
const FIRST_OFFER_TRIES: usize = 3;

/// How the dispatcher searches and offers.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Search radii in metres, widened with each attempt.
    pub radii_m: Vec<f64>,
    /// Nearest candidates ranked per offer.
    pub candidates: usize,
    /// Offers per round before escalation.
    pub max_attempts: u32,
    /// Seconds a provider has to answer.
    pub offer_timeout_s: u32,
    /// Fixes older than this make a vehicle ineligible, seconds.
    pub fix_max_age_s: u32,
    /// Near-tie window, seconds.
    pub tie_window_s: u32,
    /// A case without an offer this long is retried, seconds.
    pub retry_after_s: u32,
}

/// What one dispatch step did.
#[derive(Debug, Clone, PartialEq)]
pub enum DispatchOutcome {
    /// An offer went out.
    Offered(Offer),
    /// Nobody could be offered; the case went to an agent.
    Escalated,
    /// The case is not (or no longer) dispatching.
    NotDispatching,
    /// The case already has a pending offer.
    AlreadyOffered,
    /// Another task of this instance is dispatching the case right now.
    InFlight,
    /// Triage queued the case for a phone expert; no vehicle is sought.
    QueuedForDiagnosis,
}

/// The offer cascade (see the module docs).
pub struct OfferCascade {
    store: Arc<dyn Store>,
    registry: Arc<FleetRegistry>,
    eta: Arc<dyn EtaModel>,
    scores: Arc<ProviderScores>,
    clock: Arc<dyn Clock>,
    settings: DispatchSettings,
    alerts: Arc<Alerts>,
    in_flight: Mutex<HashSet<CaseId>>,
}

/// Removes a case from the in-flight set when dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<CaseId>>,
    case_id: CaseId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.case_id);
    }
}

impl OfferCascade {
    /// A cascade over the given parts.
    pub fn new(
        store: Arc<dyn Store>,
        registry: Arc<FleetRegistry>,
        eta: Arc<dyn EtaModel>,
        scores: Arc<ProviderScores>,
        clock: Arc<dyn Clock>,
        settings: DispatchSettings,
        alerts: Arc<Alerts>,
    ) -> OfferCascade {
        OfferCascade {
            store,
            registry,
            eta,
            scores,
            clock,
            settings,
            alerts,
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// The ETA model.
    pub fn eta_model(&self) -> &Arc<dyn EtaModel> {
        &self.eta
    }

    /// The provider scores used for near-ties.
    pub fn scores(&self) -> &Arc<ProviderScores> {
        &self.scores
    }

    /// The first offer of a case created with its triage (it is `dispatching` with no
    /// offer yet): no need to read it back. `started` is when the request came in.
    #[tracing::instrument(skip_all, fields(case_id = %case.id))]
    pub async fn dispatch_new(
        &self,
        case: Case,
        started: Instant,
    ) -> Result<DispatchOutcome, StoreError> {
        let case_id = case.id;
        let known = DispatchState {
            case,
            offers_in_round: Vec::new(),
        };
        let outcome = self.dispatch_from(case_id, Some(known)).await?;
        if matches!(outcome, DispatchOutcome::Offered(_)) {
            metrics::histogram!(DISPATCH_LATENCY).record(started.elapsed().as_secs_f64());
        }
        Ok(outcome)
    }

    /// Makes the next offer of a dispatching case, or escalates it.
    #[tracing::instrument(skip_all, fields(case_id = %case_id))]
    pub async fn dispatch(&self, case_id: CaseId) -> Result<DispatchOutcome, StoreError> {
        self.dispatch_from(case_id, None).await
    }

    /// `dispatch`, starting from `known` when the caller has the case's state already.
    async fn dispatch_from(
        &self,
        case_id: CaseId,
        mut known: Option<DispatchState>,
    ) -> Result<DispatchOutcome, StoreError> {
        let Some(_guard) = self.enter(case_id) else {
            return Ok(DispatchOutcome::InFlight);
        };
        // A vehicle claimed by another case between our query and our claim loses us the
        // race for that vehicle only: try the next, a bounded number of times.
        for _ in 0..4 {
            let state = match known.take() {
                Some(state) => state,
                None => match self.store.dispatch_state(case_id).await? {
                    Some(state) => state,
                    None => return Ok(DispatchOutcome::NotDispatching),
                },
            };
            if state.case.status != CaseStatus::Dispatching {
                return Ok(DispatchOutcome::NotDispatching);
            }
            if state
                .offers_in_round
                .iter()
                .any(|offer| offer.state == OfferState::Pending)
            {
                return Ok(DispatchOutcome::AlreadyOffered);
            }
            let attempt = u32::try_from(state.offers_in_round.len()).unwrap_or(u32::MAX) + 1;
            if attempt > self.settings.max_attempts {
                let message = format!(
                    "no vehicle accepted after {} offers",
                    state.offers_in_round.len()
                );
                return self
                    .escalate(&state.case, message, "attempts_exhausted")
                    .await;
            }
            let Some((ranked, radius_m, record_decided)) = self.candidates(&state, attempt) else {
                let widest_km = self.settings.radii_m.last().copied().unwrap_or(0.0) / 1000.0;
                let message = format!(
                    "no available vehicle for {} within {widest_km:.0} km",
                    state.case.service
                );
                return self.escalate(&state.case, message, "no_candidate").await;
            };
            match self
                .offer(&state.case, attempt, &ranked, radius_m, record_decided)
                .await?
            {
                Some(offer) => return Ok(DispatchOutcome::Offered(offer)),
                None => continue,
            }
        }
        // Repeatedly beaten to the vehicles: leave it to the retry sweep.
        Ok(DispatchOutcome::AlreadyOffered)
    }

    fn enter(&self, case_id: CaseId) -> Option<InFlight<'_>> {
        if self.in_flight.lock().insert(case_id) {
            Some(InFlight {
                set: &self.in_flight,
                case_id,
            })
        } else {
            None
        }
    }

    /// The ETA of the best vehicle that could be offered the case now: what the driver
    /// would wait for a truck (the report's saved waiting).
    pub fn expected_eta_s(&self, case: &Case) -> Option<u32> {
        let (ranked, _) = self.ranked_candidates(case)?;
        ranked.iter().map(|candidate| candidate.eta_s).min()
    }

    /// The vehicles the matcher would offer the case to now, best first, with the radius
    /// step they were found in: what an agent chooses from to assign by hand. `None` when
    /// nobody qualifies even at the widest radius.
    pub fn ranked_candidates(&self, case: &Case) -> Option<(Vec<RankedCandidate>, f64)> {
        let state = DispatchState {
            case: case.clone(),
            offers_in_round: Vec::new(),
        };
        let (ranked, radius_m, _) = self.candidates(&state, 1)?;
        Some((ranked, radius_m))
    }

    /// Ranked candidates of the widest radius step needed (the attempt's own radius at
    /// least), or `None` when nobody qualifies even at the widest.
    fn candidates(
        &self,
        state: &DispatchState,
        attempt: u32,
    ) -> Option<(Vec<RankedCandidate>, f64, bool)> {
        let case = &state.case;
        let now = self.clock.now();
        let oldest_fix = now - chrono::Duration::seconds(i64::from(self.settings.fix_max_age_s));
        let tried: HashSet<_> = state
            .offers_in_round
            .iter()
            .map(|offer| offer.vehicle_id)
            .collect();
        let first_step = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let first_step = first_step.min(self.settings.radii_m.len().saturating_sub(1));
        let point = case.location.position;
        let mut coverage: std::collections::HashMap<domain::ProviderId, bool> =
            std::collections::HashMap::new();
        for radius_m in &self.settings.radii_m[first_step..] {
            let found = self.registry.index().nearest(
                point,
                self.settings.candidates,
                *radius_m,
                |vehicle| {
                    vehicle.state == VehicleState::Available
                        && vehicle.fix_at >= oldest_fix
                        && vehicle.capabilities.contains(case.service)
                        && !tried.contains(&vehicle.id)
                        && *coverage
                            .entry(vehicle.provider)
                            .or_insert_with(|| self.registry.covers(vehicle.provider, &point))
                },
            );
            if found.is_empty() {
                continue;
            }
            let origins: Vec<EtaOrigin> = found
                .iter()
                .map(|candidate| EtaOrigin::at(candidate.vehicle.position))
                .collect();
            let etas = self.eta.etas(&point, case.location.road_kind, &origins);
            let candidates = found
                .into_iter()
                .zip(etas)
                .map(|(candidate, eta)| RankedCandidate {
                    vehicle_id: candidate.vehicle.id,
                    provider_id: candidate.vehicle.provider,
                    distance_m: candidate.distance_m,
                    eta_s: eta.eta_s,
                    eta_model: eta.model,
                    road_distance_m: eta.road_distance_m.map(f64::round),
                    score: self.scores.get(candidate.vehicle.provider),
                    priority: self.registry.priority(candidate.vehicle.provider),
                    near_tie: false,
                })
                .collect();
            let (ranked, record_decided) = rank(candidates, self.settings.tie_window_s);
            return Some((ranked, *radius_m, record_decided));
        }
        None
    }

    /// Claims and offers the best candidate that can still be claimed. `None` when every
    /// candidate was taken meanwhile.
    async fn offer(
        &self,
        case: &Case,
        attempt: u32,
        ranked: &[RankedCandidate],
        radius_m: f64,
        record_decided: bool,
    ) -> Result<Option<Offer>, StoreError> {
        for (position, chosen) in ranked.iter().enumerate() {
            let (offer, ranking) =
                self.proposal(case, attempt, ranked, position, radius_m, record_decided);
            match self.store.create_offer(&offer, &ranking).await {
                Ok(stored) => {
                    self.booked(&stored);
                    return Ok(Some(stored));
                }
                Err(StoreError::Conflict(_)) => {
                    // Either the vehicle was claimed by another case (refresh our view of
                    // it and try the next) or the case changed (the caller re-reads it).
                    if let Some(vehicle) = self.store.get_vehicle(chosen.vehicle_id).await? {
                        self.registry.set_state(vehicle.id, vehicle.state);
                    }
                    let state = self.store.dispatch_state(case.id).await?;
                    let still_open = state.is_some_and(|state| {
                        state.case.status == CaseStatus::Dispatching
                            && !state
                                .offers_in_round
                                .iter()
                                .any(|o| o.state == OfferState::Pending)
                    });
                    if !still_open {
                        return Ok(None);
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// The offer of the `position`-th ranked candidate, with the `candidates_ranked` event
    /// that says why it was chosen.
    fn proposal(
        &self,
        case: &Case,
        attempt: u32,
        ranked: &[RankedCandidate],
        position: usize,
        radius_m: f64,
        record_decided: bool,
    ) -> (NewOffer, NewEvent) {
        let chosen = &ranked[position];
        let now = self.clock.now();
        let offer = NewOffer {
            id: OfferId::new_v7(),
            case_id: case.id,
            vehicle_id: chosen.vehicle_id,
            provider_id: chosen.provider_id,
            attempt,
            eta_s: chosen.eta_s,
            distance_m: chosen.distance_m,
            sent_at: now,
            expires_at: now + chrono::Duration::seconds(i64::from(self.settings.offer_timeout_s)),
        };
        let top: Vec<serde_json::Value> = ranked
            .iter()
            .take(5)
            .enumerate()
            .map(|(rank, candidate)| {
                serde_json::json!({
                    "rank": rank + 1,
                    "vehicle_id": candidate.vehicle_id,
                    "provider_id": candidate.provider_id,
                    "distance_m": candidate.distance_m.round(),
                    "eta_s": candidate.eta_s,
                    "eta_model": candidate.eta_model,
                    "road_distance_m": candidate.road_distance_m,
                    "acceptance_rate": (candidate.score.acceptance_rate * 1000.0).round() / 1000.0,
                    "on_time_rate": (candidate.score.on_time_rate * 1000.0).round() / 1000.0,
                    "near_tie": candidate.near_tie,
                    "chosen": candidate.vehicle_id == chosen.vehicle_id,
                })
            })
            .collect();
        let reason = if position > 0 {
            "better candidates were taken by other cases meanwhile"
        } else if record_decided {
            "near-tie on ETA broken by provider record"
        } else {
            "fastest ETA"
        };
        let ranking = NewEvent::new(
            EventKind::CandidatesRanked,
            Actor::System,
            now,
            serde_json::json!({
                "attempt": attempt,
                "radius_m": radius_m,
                "eta_model": self.eta.name(),
                "considered": ranked.len(),
                "reason": reason,
                "candidates": top,
            }),
        );
        (offer, ranking)
    }

    /// The first offers to try for a case that needs a vehicle, written with the case
    /// itself (see [`domain::ports::TriageWrite::Dispatch`]): the best few candidates of
    /// the first radius step that has any. Empty when nobody qualifies; the matcher then
    /// escalates it as usual.
    pub fn first_offers(&self, case: &Case) -> Vec<(NewOffer, NewEvent)> {
        let state = DispatchState {
            case: case.clone(),
            offers_in_round: Vec::new(),
        };
        let Some((ranked, radius_m, record_decided)) = self.candidates(&state, 1) else {
            return Vec::new();
        };
        (0..ranked.len().min(FIRST_OFFER_TRIES))
            .map(|position| self.proposal(case, 1, &ranked, position, radius_m, record_decided))
            .collect()
    }

    /// Books a first offer written with its case: the vehicle is `offered` in the index,
    /// and the dispatch latency runs from `started`, when the request came in.
    pub fn offered_at_intake(&self, offer: &Offer, started: Instant) {
        self.booked(offer);
        metrics::histogram!(DISPATCH_LATENCY).record(started.elapsed().as_secs_f64());
    }

    /// Books a persisted offer, wherever it was written: its vehicle is `offered` in the
    /// index, the offer is counted and logged (no position, no phone number).
    fn booked(&self, offer: &Offer) {
        self.registry
            .set_state(offer.vehicle_id, VehicleState::Offered);
        metrics::counter!(OFFERS, "outcome" => "sent").increment(1);
        tracing::info!(case_id = %offer.case_id, offer_id = %offer.id, attempt = offer.attempt, eta_s = offer.eta_s, "offer sent");
    }

    async fn escalate(
        &self,
        case: &Case,
        message: String,
        reason: &'static str,
    ) -> Result<DispatchOutcome, StoreError> {
        let alert = Alerts::draft(AlertKind::NoVehicle, Severity::Critical, None, message);
        match self
            .store
            .escalate_case(case.id, self.clock.now(), &alert)
            .await
        {
            Ok(_) => {
                metrics::counter!(ESCALATIONS, "reason" => reason).increment(1);
                // The store raises the alert only when no `no_vehicle` alert of the case
                // is still live.
                self.alerts.record_if_stored(case.id, &alert).await;
                tracing::warn!(case_id = %case.id, reason, "case escalated to an agent");
                Ok(DispatchOutcome::Escalated)
            }
            Err(StoreError::Conflict(_)) => Ok(DispatchOutcome::NotDispatching),
            Err(error) => Err(error),
        }
    }

    /// A provider accepts an offer: the case is assigned, the vehicle busy.
    pub async fn accept_offer(
        &self,
        offer_id: domain::OfferId,
        provider_id: domain::ProviderId,
        provider_eta_s: Option<u32>,
    ) -> Result<(Offer, Case), StoreError> {
        let (offer, case) = self
            .store
            .accept_offer(offer_id, provider_id, self.clock.now(), provider_eta_s)
            .await?;
        self.registry
            .set_state(offer.vehicle_id, VehicleState::Busy);
        metrics::counter!(OFFERS, "outcome" => "accepted").increment(1);
        tracing::info!(offer_id = %offer.id, case_id = %case.id, "offer accepted");
        Ok((offer, case))
    }

    /// A provider declines an offer: the vehicle is free again and the next one is
    /// offered, in the background.
    pub async fn decline_offer(
        self: &Arc<Self>,
        offer_id: domain::OfferId,
        provider_id: domain::ProviderId,
        reason: domain::DeclineReason,
    ) -> Result<Offer, StoreError> {
        let offer = self
            .store
            .decline_offer(offer_id, provider_id, reason, self.clock.now())
            .await?;
        self.registry
            .set_state(offer.vehicle_id, VehicleState::Available);
        metrics::counter!(OFFERS, "outcome" => "declined").increment(1);
        self.spawn_dispatch(offer.case_id);
        Ok(offer)
    }

    /// A provider reports progress on its job; completion frees the vehicle.
    pub async fn report_job_status(
        &self,
        case_id: CaseId,
        provider_id: domain::ProviderId,
        to: CaseStatus,
    ) -> Result<Case, StoreError> {
        let (case, released) = self
            .store
            .report_job_status(case_id, provider_id, to, self.clock.now())
            .await?;
        self.apply_released(&released);
        tracing::info!(case_id = %case.id, status = %case.status, "job status reported");
        Ok(case)
    }

    /// Cancels a case, withdrawing its offer and ending its job.
    pub async fn cancel_case(
        &self,
        case_id: CaseId,
        actor: &Actor,
        reason: &str,
    ) -> Result<Case, StoreError> {
        let (case, released) = self
            .store
            .cancel_case(case_id, actor, self.clock.now(), reason)
            .await?;
        self.apply_released(&released);
        tracing::info!(case_id = %case.id, "case cancelled");
        Ok(case)
    }

    /// Records in memory what a storage change released.
    pub fn apply_released(&self, released: &domain::ports::Released) {
        for vehicle in &released.vehicles {
            self.registry.set_state(*vehicle, VehicleState::Available);
        }
        for offer in &released.offers {
            if offer.state == OfferState::Withdrawn {
                metrics::counter!(OFFERS, "outcome" => "withdrawn").increment(1);
            }
        }
    }

    /// The first offer of a case just created with its triage, in the background.
    pub fn spawn_dispatch_new(self: &Arc<Self>, case: Case, started: Instant) {
        let cascade = self.clone();
        tokio::spawn(async move {
            let case_id = case.id;
            if let Err(error) = cascade.dispatch_new(case, started).await {
                tracing::warn!(case_id = %case_id, error = %error, "dispatch failed; the retry sweep will pick the case up");
            }
        });
    }

    /// Makes the next offer of a case, in the background.
    pub fn spawn_dispatch(self: &Arc<Self>, case_id: CaseId) {
        let cascade = self.clone();
        tokio::spawn(async move {
            if let Err(error) = cascade.dispatch(case_id).await {
                tracing::warn!(case_id = %case_id, error = %error, "dispatch failed; the retry sweep will pick the case up");
            }
        });
    }

    /// Expires due offers (each exactly once, across instances) and cascades their cases.
    pub async fn expire_due(&self) -> Result<usize, StoreError> {
        let expired = self.store.expire_offers(self.clock.now(), 200).await?;
        for offer in &expired {
            self.registry
                .set_state(offer.vehicle_id, VehicleState::Available);
            metrics::counter!(OFFERS, "outcome" => "expired").increment(1);
        }
        for offer in &expired {
            if let Err(error) = self.dispatch(offer.case_id).await {
                tracing::warn!(case_id = %offer.case_id, error = %error, "cascade after expiry failed; the retry sweep will pick it up");
            }
        }
        Ok(expired.len())
    }

    /// Finds dispatching cases the cascade lost track of (a crash between steps, a
    /// failure) and makes their next offer.
    pub async fn retry_waiting(&self) -> Result<usize, StoreError> {
        let before = self.retry_cutoff();
        let waiting = self.store.cases_awaiting_offer(before, 100).await?;
        for case_id in &waiting {
            if let Err(error) = self.dispatch(*case_id).await {
                tracing::warn!(case_id = %case_id, error = %error, "dispatch retry failed");
            }
        }
        Ok(waiting.len())
    }

    /// Cases untouched since before this are retried.
    pub fn retry_cutoff(&self) -> domain::Timestamp {
        self.clock.now() - chrono::Duration::seconds(i64::from(self.settings.retry_after_s))
    }

    /// An agent assigns a vehicle by hand: it must be able to do the job; the promise is
    /// the ETA model's from its last known position (an hour when none is known). Any
    /// pending offer of the case is withdrawn.
    pub async fn assign_manually(
        &self,
        case_id: CaseId,
        vehicle_id: VehicleId,
        actor: &Actor,
    ) -> Result<Case, AssignError> {
        let case = self
            .store
            .get_case(case_id)
            .await?
            .ok_or(AssignError::CaseNotFound)?;
        let vehicle = self
            .store
            .get_vehicle(vehicle_id)
            .await?
            .ok_or(AssignError::NoSuchVehicle)?;
        if !vehicle.capabilities.contains(&case.service) {
            return Err(AssignError::Incapable(case.service));
        }
        let position = self
            .registry
            .index()
            .get(vehicle_id)
            .map(|v| v.position)
            .or_else(|| vehicle.last_fix.as_ref().map(|fix| fix.position));
        let (eta_s, distance_m) = match position {
            Some(position) => (
                self.eta
                    .eta_s(&position, &case.location.position, case.location.road_kind),
                position.distance_m(&case.location.position),
            ),
            // No position known: promise an hour, the agent can tell the customer better.
            None => (3600, 0.0),
        };
        let assignment = ManualAssignment {
            offer_id: OfferId::new_v7(),
            vehicle_id,
            eta_s,
            distance_m,
        };
        let (case, _offer, released) = self
            .store
            .assign_vehicle(case_id, &assignment, actor, self.clock.now())
            .await
            .map_err(|error| match error {
                StoreError::NotFound => AssignError::CaseNotFound,
                other => AssignError::Store(other),
            })?;
        self.apply_released(&released);
        self.registry.set_state(vehicle_id, VehicleState::Busy);
        tracing::info!(case_id = %case.id, vehicle = %vehicle_id, "vehicle assigned by an agent");
        Ok(case)
    }

    /// An agent sends an escalated case back to dispatch; the next offer goes out in the
    /// background.
    pub async fn redispatch(
        self: &Arc<Self>,
        case_id: CaseId,
        actor: &Actor,
    ) -> Result<Case, StoreError> {
        let case = self
            .store
            .redispatch_case(case_id, actor, self.clock.now())
            .await?;
        self.spawn_dispatch(case_id);
        Ok(case)
    }

    /// A provider's pending offers that can still be answered, oldest first.
    pub async fn provider_offers(
        &self,
        provider: domain::ProviderId,
    ) -> Result<Vec<OfferView>, StoreError> {
        let now = self.clock.now();
        let mut offers = Vec::new();
        for offer in self.store.pending_offers(provider).await? {
            // Expired but not swept yet: no longer answerable, so not shown.
            if offer.expires_at > now {
                offers.push(offer_view(self.store.as_ref(), &self.registry, &offer).await?);
            }
        }
        Ok(offers)
    }

    /// Every offer of a case, oldest first; `None` when there is no such case.
    pub async fn case_offers(&self, case_id: CaseId) -> Result<Option<Vec<Offer>>, StoreError> {
        if self.store.get_case(case_id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(self.store.case_offers(case_id).await?))
    }

    /// The provider's own id of a vehicle (empty when unknown to this instance).
    pub fn vehicle_ref(&self, vehicle: VehicleId) -> String {
        self.registry
            .meta(vehicle)
            .map(|meta| meta.external_id)
            .unwrap_or_default()
    }

    /// The vehicles an agent can assign a case to, best first, with what the agent needs
    /// to choose (the provider's name, the plate); `None` when the case is not found.
    pub async fn assignable(&self, case_id: CaseId) -> Result<Assignable, AssignError> {
        let case = self
            .store
            .get_case(case_id)
            .await?
            .ok_or(AssignError::CaseNotFound)?;
        if !matches!(case.status, CaseStatus::Dispatching | CaseStatus::Escalated) {
            return Err(AssignError::NotAssignable(case.status));
        }
        let Some((ranked, radius_m)) = self.ranked_candidates(&case) else {
            return Ok(Assignable {
                candidates: Vec::new(),
                radius_m: None,
            });
        };
        let providers: std::collections::HashMap<domain::ProviderId, String> = self
            .store
            .list_providers()
            .await?
            .into_iter()
            .map(|provider| (provider.id, provider.name))
            .collect();
        let mut candidates = Vec::with_capacity(ranked.len());
        for candidate in ranked {
            let vehicle = self.store.get_vehicle(candidate.vehicle_id).await?;
            let provider_name = providers
                .get(&candidate.provider_id)
                .cloned()
                .unwrap_or_default();
            candidates.push(AssignableVehicle {
                candidate,
                vehicle,
                provider_name,
            });
        }
        Ok(Assignable {
            candidates,
            radius_m: Some(radius_m),
        })
    }
}

/// The vehicles a case can be assigned to by hand.
#[derive(Debug, Clone)]
pub struct Assignable {
    /// Best first.
    pub candidates: Vec<AssignableVehicle>,
    /// The radius step they were found in; `None` when nobody qualifies.
    pub radius_m: Option<f64>,
}

/// One candidate for a manual assignment.
#[derive(Debug, Clone)]
pub struct AssignableVehicle {
    /// How the matcher ranks it.
    pub candidate: RankedCandidate,
    /// The stored vehicle, for its own id and plate.
    pub vehicle: Option<domain::Vehicle>,
    /// Its provider's name.
    pub provider_name: String,
}

/// Why a manual assignment (or the list to choose from) was refused.
#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    /// No such case.
    #[error("case not found")]
    CaseNotFound,
    /// No such vehicle.
    #[error("no such vehicle")]
    NoSuchVehicle,
    /// The vehicle cannot do the case's service.
    #[error("the vehicle cannot do {0}")]
    Incapable(domain::Service),
    /// The case is in a status that cannot be assigned.
    #[error("the case is {0}; only a dispatching or escalated case can be assigned")]
    NotAssignable(CaseStatus),
    /// Storage refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
