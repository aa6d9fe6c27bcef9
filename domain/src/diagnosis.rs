//! Remote diagnosis as the store sees it: tickets of the phone-expert queue, the safety
//! facts a case request reports, and masked-call bindings. The policy (triage, queue
//! order, claim expiry, fallback) lives in crate `diagnosis-core`; these are the values
//! it works on and the storage layer persists.

use serde::{Deserialize, Serialize};

use crate::case::FaultCategory;
use crate::ids::{CaseId, TicketId, UserId};
use crate::time::Timestamp;

vocabulary! {
    /// How a diagnosis ticket ended (the same vocabulary as `diagnosis_core::TicketOutcome`).
    pub enum TicketOutcome: "ticket outcome" {
        /// The expert fixed it on the phone; the case closed as `resolved_remotely`.
        Solved = "solved",
        /// The expert could not fix it; dispatch started at raised priority.
        Escalated = "escalated",
        /// The case ended otherwise (cancelled) while the ticket was open.
        Abandoned = "abandoned",
        /// No expert picked it up within the maximum wait; it was dispatched anyway.
        TimedOut = "timed_out",
    }
}

/// What the customer or agent reports about safety when the case is created. Every flag
/// defaults to `false`, so a request may send only the ones that hold:
/// `"safety": {"injury": true}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SafetyReport {
    /// There was a collision.
    pub accident: bool,
    /// Someone is hurt.
    pub injury: bool,
    /// Smoke or fire from the car.
    pub smoke_or_fire: bool,
    /// The customer is vulnerable: elderly, children alone, a disability, pregnancy or a
    /// medical need.
    pub vulnerable_customer: bool,
    /// The customer asked for a vehicle rather than a phone call.
    pub requests_vehicle: bool,
}

/// A remote-diagnosis ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosisTicket {
    /// Ticket id (UUID v7).
    pub id: TicketId,
    /// The case (one ticket per case).
    pub case_id: CaseId,
    /// The case's fault category (for the queue view, metrics and the report).
    pub category: FaultCategory,
    /// The skill an expert needs.
    pub skill: String,
    /// The triage rule that queued it.
    pub rule_id: String,
    /// Typical call length, seconds.
    pub expected_fix_s: u32,
    /// The truck ETA estimated at triage, seconds, if a truck was in range.
    pub expected_truck_eta_s: Option<u32>,
    /// Queue priority, higher first.
    pub priority: i32,
    /// When it joined the queue.
    pub queued_at: chrono::DateTime<chrono::Utc>,
    /// The expert holding the claim.
    pub claimed_by: Option<UserId>,
    /// When the current claim was taken.
    pub claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the current claim lapses unless reported.
    pub claim_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When an expert first claimed it (time to pickup).
    pub first_claimed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How many claims lapsed.
    pub lapsed_claims: u32,
    /// How it ended; `None` while open.
    pub outcome: Option<TicketOutcome>,
    /// The expert's notes.
    pub notes: Option<String>,
    /// When it ended.
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A ticket about to be queued.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// Ticket id.
    pub id: TicketId,
    /// The skill an expert needs.
    pub skill: String,
    /// The rule that decided.
    pub rule_id: String,
    /// Typical call length, seconds.
    pub expected_fix_s: u32,
    /// The truck ETA estimated at triage, seconds.
    pub expected_truck_eta_s: Option<u32>,
    /// Queue priority.
    pub priority: i32,
    /// Queued at.
    pub queued_at: Timestamp,
}

/// An expert asking for the next ticket.
#[derive(Debug, Clone)]
pub struct TicketClaim {
    /// The expert.
    pub expert: UserId,
    /// Their skills; only tickets needing one of them are handed out.
    pub skills: Vec<String>,
    /// Now.
    pub at: Timestamp,
    /// When the claim lapses unless reported.
    pub expires_at: Timestamp,
    /// Tickets queued at or before this are due for the fallback and not handed out.
    pub fallback_cutoff: Timestamp,
}

/// How an expert closes a claimed ticket.
#[derive(Debug, Clone)]
pub struct TicketReport {
    /// `Solved` or `Escalated`.
    pub outcome: TicketOutcome,
    /// The expert who must hold the claim.
    pub expert: UserId,
    /// Notes for the timeline.
    pub notes: Option<String>,
    /// Priority points added on escalation.
    pub priority_points: i32,
    /// When.
    pub at: Timestamp,
}

/// A virtual number bound to a case and its two parties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneBindingRecord {
    /// The virtual number both parties dial.
    pub virtual_number: String,
    /// The case.
    pub case_id: CaseId,
    /// One party (the expert or agent's line).
    pub party_a: String,
    /// The other party (the customer).
    pub party_b: String,
    /// When it was bound (or bound again).
    pub bound_at: chrono::DateTime<chrono::Utc>,
    /// When it was released; `None` while live.
    pub released_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A request for a virtual number.
#[derive(Debug, Clone)]
pub struct NewPhoneBinding {
    /// The case.
    pub case_id: CaseId,
    /// The configured pool, in order (never-used numbers are handed out in this order).
    pub pool: Vec<String>,
    /// One party.
    pub party_a: String,
    /// The other party.
    pub party_b: String,
    /// When.
    pub at: Timestamp,
}

/// One case of the diagnosis report period, with its ticket if it had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosisReportRow {
    /// The case.
    pub case_id: CaseId,
    /// Its fault category.
    pub category: FaultCategory,
    /// Its closed ticket, if it was queued for an expert.
    pub ticket: Option<DiagnosisTicket>,
}
