//! The ports the server's core talks to, implemented elsewhere: storage (SQLite and
//! PostgreSQL, crate `storage`). Every method that changes a case writes the change and its
//! timeline event in one transaction.

use async_trait::async_trait;

use crate::account::{Provider, User};
use crate::case::{Case, Channel, Service};
use crate::event::{Actor, Event, NewEvent};
use crate::fleet::{
    Alert, AlertKind, AlertState, DeclineReason, DeviceProtocol, Fix, Offer, Severity, Vehicle,
    VehicleRegistration,
};
use crate::ids::{CaseId, OfferId, ProviderId, UserId, VehicleId};
use crate::status::{CaseStatus, IllegalTransition};
use crate::time::Timestamp;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a concurrent change refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The status machine refused the change.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The database cannot be reached right now; retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    #[error("storage error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A new session for a console user. Only the SHA-256 of the token is stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the bearer token.
    pub token_hash: [u8; 32],
    /// Whose session.
    pub user_id: UserId,
    /// Created.
    pub created_at: Timestamp,
    /// After this the token is refused.
    pub expires_at: Timestamp,
}

/// Providers, users and sessions.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores a provider with the SHA-256 of its API key.
    async fn insert_provider(
        &self,
        provider: &Provider,
        api_key_hash: &[u8; 32],
    ) -> Result<(), StoreError>;
    /// The provider whose API key hashes to `api_key_hash`.
    async fn provider_by_api_key_hash(
        &self,
        api_key_hash: &[u8; 32],
    ) -> Result<Option<Provider>, StoreError>;
    /// A provider by id.
    async fn get_provider(&self, id: ProviderId) -> Result<Option<Provider>, StoreError>;
    /// Stores a user with their argon2 password hash (PHC string). A taken username is a
    /// [`StoreError::Conflict`].
    async fn insert_user(&self, user: &User, password_hash: &str) -> Result<(), StoreError>;
    /// A user and their password hash, by username.
    async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>, StoreError>;
    /// A user by id.
    async fn get_user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// Stores a session.
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError>;
    /// The user of a live (not expired at `now`) session.
    async fn session_user(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> Result<Option<User>, StoreError>;
    /// Ends a session.
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;
}

/// A request to make case creation idempotent (Stripe's `Idempotency-Key`): the first
/// request with `(scope, key)` creates the case and stores `response`; a later one with the
/// same key gets the stored response back and creates nothing.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// Who sent it (`app`, `agent:<id>` …): keys of different callers never collide.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// SHA-256 of the request body, to refuse the same key with a different body.
    pub request_hash: [u8; 32],
    /// The response body to replay (without secrets; the caller re-adds those).
    pub response: serde_json::Value,
    /// When the key was first used.
    pub created_at: Timestamp,
}

/// What `create_case` did.
#[derive(Debug, Clone)]
pub enum CreateCaseOutcome {
    /// The case was created.
    Created(Box<Case>),
    /// The idempotency key was seen before: nothing was created.
    Replayed {
        /// The case the first request created.
        case_id: CaseId,
        /// The first request's body hash.
        request_hash: [u8; 32],
        /// The first request's response.
        response: serde_json::Value,
    },
}

/// Which cases to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Only these statuses (any when empty).
    pub statuses: Vec<CaseStatus>,
    /// Only this channel.
    pub channel: Option<Channel>,
    /// Only this service.
    pub service: Option<Service>,
    /// Created at or after.
    pub created_from: Option<Timestamp>,
    /// Created before.
    pub created_to: Option<Timestamp>,
    /// Keyset cursor: only cases with a smaller id (older) than this one.
    pub before: Option<CaseId>,
    /// At most this many.
    pub limit: u32,
}

/// A status change request.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The wanted status.
    pub to: CaseStatus,
    /// Apply only if the case is in this status now (for races between timers and people).
    pub expected_from: Option<CaseStatus>,
    /// Who asks.
    pub actor: Actor,
    /// When.
    pub at: Timestamp,
    /// Why, in a word or a sentence (`customer_request`, `no_vehicle` …).
    pub reason: Option<String>,
}

/// Cases and their timelines.
#[async_trait]
pub trait CaseStore: Send + Sync {
    /// Creates `case` and its `created` event in one transaction, honouring `idempotency`.
    async fn create_case(
        &self,
        case: &Case,
        created: &NewEvent,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<CreateCaseOutcome, StoreError>;
    /// A case by id.
    async fn get_case(&self, id: CaseId) -> Result<Option<Case>, StoreError>;
    /// Cases matching `filter`, newest first.
    async fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<Case>, StoreError>;
    /// Changes a case's status along the status machine and appends `status_changed`
    /// (data: from, to, reason) in one transaction. Refused: [`StoreError::NotFound`],
    /// [`StoreError::IllegalTransition`], or [`StoreError::Conflict`] when
    /// `expected_from` does not hold.
    async fn transition_case(
        &self,
        id: CaseId,
        transition: &Transition,
    ) -> Result<(Case, Event), StoreError>;
    /// Appends an event to a case's timeline.
    async fn append_event(&self, id: CaseId, event: &NewEvent) -> Result<Event, StoreError>;
    /// A case's timeline in order.
    async fn timeline(&self, id: CaseId) -> Result<Vec<Event>, StoreError>;
    /// How many cases are in each status (statuses with none are omitted).
    async fn count_cases_by_status(&self) -> Result<Vec<(CaseStatus, u64)>, StoreError>;
}

/// Housekeeping.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Is the database reachable?
    async fn ping(&self) -> Result<(), StoreError>;
    /// Deletes sessions that expired before `now` and idempotency keys first used before
    /// `keys_before`. Returns how many rows went.
    async fn purge_expired(
        &self,
        now: Timestamp,
        keys_before: Timestamp,
    ) -> Result<u64, StoreError>;
}

/// A vehicle as it is registered, and whether the registration created it.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The vehicle after the registration.
    pub vehicle: Vehicle,
    /// True when the vehicle did not exist before.
    pub created: bool,
}

/// Vehicles, their devices and positions.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Registers or updates a provider's vehicle by the provider's own id. Refused with
    /// [`StoreError::Conflict`] when a device id belongs to another vehicle, or when the
    /// registration changes the state of a vehicle that holds an offer or a job.
    async fn register_vehicle(
        &self,
        provider_id: ProviderId,
        external_id: &str,
        registration: &VehicleRegistration,
        at: Timestamp,
    ) -> Result<Registered, StoreError>;
    /// A vehicle by the server's id.
    async fn get_vehicle(&self, id: VehicleId) -> Result<Option<Vehicle>, StoreError>;
    /// A provider's vehicle by the provider's own id.
    async fn find_vehicle(
        &self,
        provider_id: ProviderId,
        external_id: &str,
    ) -> Result<Option<Vehicle>, StoreError>;
    /// Every vehicle (to rebuild the fleet index at start).
    async fn list_vehicles(&self) -> Result<Vec<Vehicle>, StoreError>;
    /// A provider's vehicles.
    async fn list_provider_vehicles(
        &self,
        provider_id: ProviderId,
    ) -> Result<Vec<Vehicle>, StoreError>;
    /// The vehicle a GPS device reports for.
    async fn vehicle_by_device(
        &self,
        protocol: DeviceProtocol,
        device_id: &str,
    ) -> Result<Option<Vehicle>, StoreError>;
    /// Stores the latest positions, many at once. A position older than the stored one
    /// is ignored, so the live position never moves back in time. Returns how many moved.
    async fn save_last_fixes(&self, fixes: &[(VehicleId, Fix)]) -> Result<u64, StoreError>;
    /// Every provider (for service areas and records).
    async fn list_providers(&self) -> Result<Vec<Provider>, StoreError>;
}

/// An offer the matcher is about to make.
#[derive(Debug, Clone)]
pub struct NewOffer {
    /// Offer id.
    pub id: OfferId,
    /// The case, which must be `dispatching`.
    pub case_id: CaseId,
    /// The vehicle, which must be `available`; it becomes `offered`.
    pub vehicle_id: VehicleId,
    /// The vehicle's provider.
    pub provider_id: ProviderId,
    /// Which attempt for the case this is (1, 2 …).
    pub attempt: u32,
    /// Quoted ETA, seconds.
    pub eta_s: u32,
    /// Distance to the customer, metres.
    pub distance_m: f64,
    /// Sent at.
    pub sent_at: Timestamp,
    /// Expires at.
    pub expires_at: Timestamp,
}

/// An alert about to be raised.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// Alert id.
    pub id: crate::ids::AlertId,
    /// What it warns of.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// When the promise will be broken, if known.
    pub predicted_breach: Option<Timestamp>,
    /// What an agent reads.
    pub message: String,
}

/// A manual assignment by an agent.
#[derive(Debug, Clone)]
pub struct ManualAssignment {
    /// Offer id for the job record.
    pub offer_id: OfferId,
    /// The vehicle, which must be `available`.
    pub vehicle_id: VehicleId,
    /// Quoted ETA, seconds.
    pub eta_s: u32,
    /// Distance to the customer, metres.
    pub distance_m: f64,
}

/// What a change released: vehicles that are free again, offers that were called back.
#[derive(Debug, Clone, Default)]
pub struct Released {
    /// Vehicles now `available`.
    pub vehicles: Vec<VehicleId>,
    /// Offers withdrawn (pending) or jobs ended (accepted).
    pub offers: Vec<Offer>,
}

/// What the matcher needs to make the next offer of a case.
#[derive(Debug, Clone)]
pub struct DispatchState {
    /// The case.
    pub case: Case,
    /// Offers made since the case last entered `dispatching`, oldest first.
    pub offers_in_round: Vec<Offer>,
}

/// How a provider has answered offers and kept promises, for near-tie ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProviderRecord {
    /// The provider.
    pub provider_id: ProviderId,
    /// Offers answered or expired.
    pub offers: u64,
    /// Of which accepted.
    pub accepted: u64,
    /// Jobs that reached the customer.
    pub arrivals: u64,
    /// Of which on or before the promised time.
    pub on_time: u64,
}

/// Offers, jobs and escalations: every method is one transaction that keeps cases,
/// offers, vehicles and the timeline consistent. Locks are taken case first, then offer,
/// then vehicle, on every path.
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// Claims the vehicle (`available → offered`, refused if no longer available), stores
    /// the offer and appends `ranking` and `offer_sent`. The case must be `dispatching`.
    async fn create_offer(&self, offer: &NewOffer, ranking: &NewEvent)
    -> Result<Offer, StoreError>;
    /// The provider accepts: offer `accepted`, vehicle `busy`, case `assigned` with the
    /// promised arrival. Refused (409) when the offer expired or was answered.
    async fn accept_offer(
        &self,
        offer_id: OfferId,
        provider_id: ProviderId,
        at: Timestamp,
        provider_eta_s: Option<u32>,
    ) -> Result<(Offer, Case), StoreError>;
    /// The provider declines: offer `declined`, vehicle `available` again.
    async fn decline_offer(
        &self,
        offer_id: OfferId,
        provider_id: ProviderId,
        reason: DeclineReason,
        at: Timestamp,
    ) -> Result<Offer, StoreError>;
    /// Expires pending offers due at `now`, each exactly once even with several
    /// instances sweeping; their vehicles become `available`.
    async fn expire_offers(&self, now: Timestamp, limit: u32) -> Result<Vec<Offer>, StoreError>;
    /// An offer by id.
    async fn get_offer(&self, id: OfferId) -> Result<Option<Offer>, StoreError>;
    /// A provider's pending offers, oldest first.
    async fn pending_offers(&self, provider_id: ProviderId) -> Result<Vec<Offer>, StoreError>;
    /// Every offer of a case, in order.
    async fn case_offers(&self, case_id: CaseId) -> Result<Vec<Offer>, StoreError>;
    /// The case and the offers of its current dispatch round (the matcher's view).
    async fn dispatch_state(&self, case_id: CaseId) -> Result<Option<DispatchState>, StoreError>;
    /// The case's job (accepted offer not yet released).
    async fn active_job(&self, case_id: CaseId) -> Result<Option<Offer>, StoreError>;
    /// No vehicle accepted: `dispatching → escalated` and the alert, unless one of that
    /// kind is already live.
    async fn escalate_case(
        &self,
        case_id: CaseId,
        at: Timestamp,
        alert: &NewAlert,
    ) -> Result<Case, StoreError>;
    /// An agent assigns a vehicle: any pending offer of the case is withdrawn, the vehicle
    /// becomes `busy`, the case `assigned`.
    async fn assign_vehicle(
        &self,
        case_id: CaseId,
        assignment: &ManualAssignment,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<(Case, Offer, Released), StoreError>;
    /// An agent sends an escalated case back to dispatching.
    async fn redispatch_case(
        &self,
        case_id: CaseId,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<Case, StoreError>;
    /// Cancels a case: withdraws its pending offer and ends its job, freeing the vehicle.
    async fn cancel_case(
        &self,
        case_id: CaseId,
        actor: &Actor,
        at: Timestamp,
        reason: &str,
    ) -> Result<(Case, Released), StoreError>;
    /// The provider reports job progress (`en_route`, `on_scene`, `in_service`,
    /// `completed`) on its own job; completion frees the vehicle.
    async fn report_job_status(
        &self,
        case_id: CaseId,
        provider_id: ProviderId,
        to: crate::status::CaseStatus,
        at: Timestamp,
    ) -> Result<(Case, Released), StoreError>;
    /// Cases in `dispatching` without a pending offer, last changed before `before`: the
    /// matcher lost track of them (a restart, a failure) and must try again.
    async fn cases_awaiting_offer(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<CaseId>, StoreError>;
    /// Cases still `new` (not triaged) created before `before`.
    async fn cases_awaiting_triage(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<CaseId>, StoreError>;
    /// Offer and arrival records per provider since `since`.
    async fn provider_records(&self, since: Timestamp) -> Result<Vec<ProviderRecord>, StoreError>;
    /// Alerts, newest first, optionally in one state.
    async fn list_alerts(
        &self,
        state: Option<AlertState>,
        limit: u32,
    ) -> Result<Vec<Alert>, StoreError>;
}

/// One stored fix of a case's trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFix {
    /// The case.
    pub case_id: CaseId,
    /// The assigned vehicle.
    pub vehicle_id: VehicleId,
    /// The position report.
    pub fix: Fix,
    /// False for batch and blind-area uploads.
    pub live: bool,
    /// When the server received it.
    pub received_at: Timestamp,
}

/// A case whose vehicle is on its way or on scene, with its job.
#[derive(Debug, Clone)]
pub struct ActiveJob {
    /// The case.
    pub case: Case,
    /// The accepted offer (or manual assignment).
    pub job: Offer,
}

/// A change to an alert's severity.
#[derive(Debug, Clone)]
pub struct AlertUpdate {
    /// New severity.
    pub severity: Severity,
    /// New predicted breach.
    pub predicted_breach: Option<Timestamp>,
    /// New message.
    pub message: String,
}

/// Trajectories, tracker state, alerts raised by rules and handled by agents, and the
/// event log as a stream.
#[async_trait]
pub trait TrackingStore: Send + Sync {
    /// Appends fixes to trajectories, many at once.
    async fn insert_case_fixes(&self, fixes: &[CaseFix]) -> Result<u64, StoreError>;
    /// A case's trajectory, oldest first.
    async fn case_fixes(&self, case_id: CaseId) -> Result<Vec<CaseFix>, StoreError>;
    /// Deletes trajectory fixes received before `before` (the timeline stays).
    async fn purge_case_fixes(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Saves a case's tracker state (opaque JSON) and its predicted arrival.
    async fn save_tracking(
        &self,
        case_id: CaseId,
        vehicle_id: VehicleId,
        state: &serde_json::Value,
        predicted_arrival: Option<Timestamp>,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// A case's saved tracker state.
    async fn load_tracking(&self, case_id: CaseId)
    -> Result<Option<serde_json::Value>, StoreError>;
    /// Cases with an active job (assigned to in service).
    async fn active_jobs(&self) -> Result<Vec<ActiveJob>, StoreError>;
    /// Opens an alert unless one of its kind is live on the case; appends `alert_raised`.
    /// `None` when one was already live.
    async fn raise_alert(
        &self,
        case_id: CaseId,
        alert: &NewAlert,
        at: Timestamp,
    ) -> Result<Option<Alert>, StoreError>;
    /// Changes the live alert of `kind` on the case; appends `alert_escalated`.
    async fn escalate_alert(
        &self,
        case_id: CaseId,
        kind: AlertKind,
        update: &AlertUpdate,
        at: Timestamp,
    ) -> Result<Option<Alert>, StoreError>;
    /// Resolves the live alert of `kind` on the case because its condition cleared
    /// (`resolved_by = system`); appends `alert_resolved`.
    async fn clear_alert(
        &self,
        case_id: CaseId,
        kind: AlertKind,
        reason: &str,
        at: Timestamp,
    ) -> Result<Option<Alert>, StoreError>;
    /// An agent acknowledges an open alert; appends `alert_acknowledged`. A resolved alert
    /// is a conflict.
    async fn acknowledge_alert(
        &self,
        id: crate::ids::AlertId,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<Alert, StoreError>;
    /// An agent resolves an alert; appends `alert_resolved`. Resolving twice is a conflict.
    async fn resolve_alert(
        &self,
        id: crate::ids::AlertId,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<Alert, StoreError>;
    /// An alert by id.
    async fn get_alert(&self, id: crate::ids::AlertId) -> Result<Option<Alert>, StoreError>;
    /// Events of every case with an id above `after`, in id order.
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError>;
    /// The highest event id so far (0 when none).
    async fn last_event_id(&self) -> Result<i64, StoreError>;
}

/// A webhook about to be queued.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Delivery id (the `Rescue-Webhook-Id` header), the same on every retry.
    pub id: uuid::Uuid,
    /// The provider it goes to.
    pub provider_id: ProviderId,
    /// `offer.created`, `offer.withdrawn`, `offer.expired`, `case.cancelled`, `case.updated`.
    pub event: String,
    /// The case it is about.
    pub case_id: Option<CaseId>,
    /// The timeline event it was derived from (one delivery per event, provider and kind).
    pub source_event_id: i64,
    /// Where it goes (the provider's URL when queued).
    pub url: String,
    /// The exact JSON that is signed and sent.
    pub body: String,
    /// After this it is useless and dead-lettered.
    pub deadline: Timestamp,
    /// Queued at.
    pub created_at: Timestamp,
}

/// One attempt to deliver a webhook.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAttempt {
    /// 1, 2, 3 …
    pub attempt: u32,
    /// When it started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// `delivered`, `http_error`, `timeout`, `network_error` or `refused`.
    pub outcome: String,
    /// The HTTP status, if one came back.
    pub status_code: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// How long it took, milliseconds.
    pub latency_ms: u64,
    /// The start of the response body.
    pub response_excerpt: Option<String>,
}

/// A queued, delivered or dead-lettered webhook.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    /// Delivery id.
    pub id: uuid::Uuid,
    /// The provider.
    pub provider_id: ProviderId,
    /// The event name.
    pub event: String,
    /// The case it is about.
    pub case_id: Option<CaseId>,
    /// Where it goes.
    pub url: String,
    /// The JSON sent.
    #[serde(skip_serializing)]
    pub body: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Next try.
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    /// Useless after this.
    pub deadline: chrono::DateTime<chrono::Utc>,
    /// Queued at.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Delivered at.
    pub delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Dead-lettered at.
    pub dead_lettered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it was given up.
    pub dead_letter_reason: Option<String>,
}

/// The webhook outbox and its delivery log.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Queues deliveries; one already queued for the same event, provider and kind is kept.
    async fn enqueue_webhooks(&self, deliveries: &[NewWebhook]) -> Result<u64, StoreError>;
    /// Claims deliveries due at `now` until `lease_until`, skipping those another worker
    /// holds.
    async fn claim_webhooks(
        &self,
        now: Timestamp,
        limit: u32,
        lease_until: Timestamp,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// Logs an attempt and schedules the next one (or none).
    async fn record_webhook_attempt(
        &self,
        id: uuid::Uuid,
        attempt: &WebhookAttempt,
        next_attempt_at: Option<Timestamp>,
    ) -> Result<(), StoreError>;
    /// Marks a delivery done.
    async fn webhook_delivered(&self, id: uuid::Uuid, at: Timestamp) -> Result<(), StoreError>;
    /// Gives a delivery up; appends `webhook_dead_lettered` to its case's timeline.
    async fn webhook_dead_letter(
        &self,
        id: uuid::Uuid,
        reason: &str,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Deliveries, newest first, optionally of one provider and in one status.
    async fn list_webhooks(
        &self,
        provider: Option<ProviderId>,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// A delivery's attempts, in order.
    async fn webhook_attempts(&self, id: uuid::Uuid) -> Result<Vec<WebhookAttempt>, StoreError>;
    /// The event id up to which the log has been turned into deliveries.
    async fn webhook_cursor(&self) -> Result<i64, StoreError>;
    /// Moves the cursor forward (never back).
    async fn advance_webhook_cursor(&self, to: i64) -> Result<(), StoreError>;
    /// Starts a new webhook secret generation for a provider.
    async fn rotate_webhook_secret(
        &self,
        provider: ProviderId,
        at: Timestamp,
    ) -> Result<Provider, StoreError>;
}

/// The triage decision on a new case, written in the transaction that creates it.
#[derive(Debug, Clone)]
pub enum TriageWrite {
    /// Phone-solvable: queue it for an expert with this ticket.
    Queue {
        /// The `triage` event.
        event: NewEvent,
        /// The ticket to queue.
        ticket: crate::diagnosis::NewTicket,
    },
    /// It needs a vehicle: move it to `dispatching` with this reason.
    Dispatch {
        /// The `triage` event.
        event: NewEvent,
        /// `needs_vehicle` or `safety_override`.
        reason: String,
        /// First offers to try, best first, each with its `candidates_ranked` event: the
        /// first whose vehicle is still available is claimed and offered in the same
        /// transaction (as [`DispatchStore::create_offer`]). Empty, or none available:
        /// the case is left `dispatching` for the matcher.
        offers: Vec<(NewOffer, NewEvent)>,
    },
}

/// Where a case created with its triage stands.
#[derive(Debug, Clone)]
pub enum TriagedCase {
    /// Queued for a phone expert (`diagnosing`).
    Queued(Box<crate::diagnosis::DiagnosisTicket>),
    /// Waiting for its first offer (`dispatching`).
    Dispatching(Box<Case>),
    /// `dispatching` with its first offer out, written in the same transaction.
    Offered {
        /// The case (`dispatching`).
        case: Box<Case>,
        /// The pending offer.
        offer: Box<Offer>,
    },
}

/// The phone-expert queue and masked-call bindings. Every method that changes a case is
/// one transaction with its timeline events; claims hand each ticket to exactly one
/// expert, however many ask at once and on however many instances.
#[async_trait]
pub trait DiagnosisStore: Send + Sync {
    /// Creates the case (as [`CaseStore::create_case`]) and writes its triage (as
    /// [`DiagnosisStore::queue_for_diagnosis`] or [`DiagnosisStore::triage_to_dispatch`])
    /// in one transaction, so a new case costs one commit before dispatch; with the first
    /// offer too when the triage carries candidates, so a request can be dispatched by
    /// one commit. An idempotent replay writes nothing and comes back without a triage.
    async fn create_triaged_case(
        &self,
        case: &Case,
        created: &NewEvent,
        idempotency: Option<&IdempotencyClaim>,
        triage: &TriageWrite,
    ) -> Result<(CreateCaseOutcome, Option<TriagedCase>), StoreError>;
    /// Triage found the case phone-solvable: appends `triage`, moves the case `new →
    /// diagnosing`, stores the ticket and appends `diagnosis_queued`. A case no longer
    /// `new` is a [`StoreError::Conflict`].
    async fn queue_for_diagnosis(
        &self,
        case_id: CaseId,
        ticket: &crate::diagnosis::NewTicket,
        triage: &NewEvent,
    ) -> Result<crate::diagnosis::DiagnosisTicket, StoreError>;
    /// Triage found the case needs a vehicle: appends `triage` and moves the case `new →
    /// dispatching` (reason `reason`). A case no longer `new` is a [`StoreError::Conflict`].
    async fn triage_to_dispatch(
        &self,
        case_id: CaseId,
        triage: &NewEvent,
        reason: &str,
    ) -> Result<Case, StoreError>;
    /// Hands the expert the first eligible ticket in queue order (`priority DESC,
    /// queued_at ASC, id ASC`): open, not under a live claim, needing one of the expert's
    /// skills, not due for the fallback. Appends `diagnosis_claimed`. `None` when there is
    /// nothing to claim.
    async fn claim_ticket(
        &self,
        claim: &crate::diagnosis::TicketClaim,
    ) -> Result<Option<crate::diagnosis::DiagnosisTicket>, StoreError>;
    /// A ticket by id.
    async fn get_ticket(
        &self,
        id: crate::ids::TicketId,
    ) -> Result<Option<crate::diagnosis::DiagnosisTicket>, StoreError>;
    /// The case's ticket, if it was ever queued.
    async fn case_ticket(
        &self,
        case_id: CaseId,
    ) -> Result<Option<crate::diagnosis::DiagnosisTicket>, StoreError>;
    /// Open tickets in queue order (claimed ones included).
    async fn open_tickets(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::diagnosis::DiagnosisTicket>, StoreError>;
    /// The expert reports: `solved` closes the case as `resolved_remotely` (and releases its
    /// virtual number), `escalated` raises the priority and moves the case to
    /// `dispatching`. Appends `diagnosis_solved` or `diagnosis_escalated`. Refused with
    /// [`StoreError::Conflict`] when the ticket is closed or the expert does not hold it.
    async fn report_ticket(
        &self,
        id: crate::ids::TicketId,
        report: &crate::diagnosis::TicketReport,
    ) -> Result<(crate::diagnosis::DiagnosisTicket, Case), StoreError>;
    /// Open tickets whose claim expired at `now`.
    async fn expired_claims(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::ids::TicketId>, StoreError>;
    /// Returns an expired claim to the queue (priority + `requeue_points`), appending
    /// `diagnosis_released`. `None` when the claim is no longer expired (reported,
    /// already lapsed by another instance).
    async fn lapse_claim(
        &self,
        id: crate::ids::TicketId,
        now: Timestamp,
        requeue_points: i32,
    ) -> Result<Option<crate::diagnosis::DiagnosisTicket>, StoreError>;
    /// Open, unclaimed (or expired-claim) tickets queued at or before `cutoff`.
    async fn tickets_due_for_fallback(
        &self,
        cutoff: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<crate::ids::TicketId>, StoreError>;
    /// Dispatches a ticket nobody picked up in time: outcome `timed_out`, the case `→
    /// dispatching`, and `alert` (a `diagnosis_wait`) raised. `None` when the ticket is no
    /// longer due (claimed, closed, already handled by another instance).
    async fn fall_back(
        &self,
        id: crate::ids::TicketId,
        cutoff: Timestamp,
        now: Timestamp,
        alert: &NewAlert,
    ) -> Result<Option<(crate::diagnosis::DiagnosisTicket, Case)>, StoreError>;
    /// Binds a virtual number from `binding.pool` to the case and its parties: the case's
    /// live number if it has one (parties replaced), else the least recently released free
    /// one. `None` when every number is bound to another case.
    async fn bind_phone(
        &self,
        binding: &crate::diagnosis::NewPhoneBinding,
    ) -> Result<Option<crate::diagnosis::PhoneBindingRecord>, StoreError>;
    /// Releases the case's live number, if any.
    async fn release_phone(&self, case_id: CaseId, at: Timestamp) -> Result<(), StoreError>;
    /// The live binding of a virtual number.
    async fn phone_binding(
        &self,
        virtual_number: &str,
    ) -> Result<Option<crate::diagnosis::PhoneBindingRecord>, StoreError>;
    /// The active triage rules document (text, version), if one was ever stored.
    async fn triage_rules(&self) -> Result<Option<(String, i64)>, StoreError>;
    /// Stores a new active triage rules document and returns its version (previous + 1).
    async fn save_triage_rules(
        &self,
        text: &str,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<i64, StoreError>;
    /// Cases created in `[from, to)` that are past diagnosis (not `new`, not
    /// `diagnosing`), with their closed ticket if they had one.
    async fn diagnosis_report_rows(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<crate::diagnosis::DiagnosisReportRow>, StoreError>;
}

/// Everything the server needs from storage.
pub trait Store:
    AccountStore
    + CaseStore
    + FleetStore
    + DispatchStore
    + TrackingStore
    + WebhookStore
    + DiagnosisStore
    + MaintenanceStore
    + Send
    + Sync
    + 'static
{
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
}
