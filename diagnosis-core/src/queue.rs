//! The phone-expert queue policy: ordering, eligibility, claims and their expiry, and the
//! fallback to dispatch. Pure functions over plain [`Ticket`] values and an injected `now`.
//!
//! The server persists tickets and enforces exactly-once claiming in the database (a
//! conditional update, or `FOR UPDATE SKIP LOCKED` on PostgreSQL); the SQL mirrors the
//! rules here, which are the reference:
//!
//! **Order** — [`Ticket::queue_key`], i.e. [`QUEUE_ORDER_SQL`]:
//! `priority DESC, queued_at ASC, id ASC`. Higher priority first, then the longest wait,
//! then the ticket id (UUID v7, byte order) so that the order is total and two servers
//! never disagree.
//!
//! **Eligible for an expert** — [`QueuePolicy::is_eligible`]: the ticket is open
//! (`outcome IS NULL`), not under a live claim (`claimed_by IS NULL OR claim_expires_at <=
//! now`), the expert has its skill (`skill = ANY(expert_skills)`), and it is not yet due for
//! the fallback (`queued_at > now - max_wait`). In SQL:
//!
//! ```sql
//! SELECT id FROM diagnosis_tickets
//!  WHERE outcome IS NULL
//!    AND (claimed_by IS NULL OR claim_expires_at <= $now)
//!    AND skill = ANY($expert_skills)
//!    AND queued_at > $now - $max_wait
//!  ORDER BY priority DESC, queued_at ASC, id ASC
//!  LIMIT 1
//!  FOR UPDATE SKIP LOCKED
//! ```
//!
//! **Due for the fallback** — [`QueuePolicy::due_for_fallback`]: open, not under a live
//! claim, and `queued_at <= now - max_wait`. Such a ticket is dispatched anyway
//! ([`Ticket::time_out`]) and a `diagnosis_wait` alert is raised.
//!
//! **Claim expiry** — a claim lasts [`QueuePolicy::claim_timeout_s`] unless the expert
//! reports (solves, escalates) or renews it ([`Ticket::renew_claim`], the console's
//! heartbeat while the call is open). Once `claim_expires_at <= now` the ticket is
//! claimable again; [`Ticket::lapse_expired_claim`] returns it to the queue and yields the
//! [`ClaimLapse`] for the timeline — once per claim, since it clears the claim.
//!
//! ```
//! use chrono::{Duration, Utc};
//! use domain::{CaseId, TicketId, Tier, UserId};
//! use diagnosis_core::{QueuePolicy, Skill, Ticket};
//!
//! let policy = QueuePolicy::default();
//! let now: chrono::DateTime<Utc> = "2026-05-04T02:00:00Z".parse().unwrap();
//! let skill = Skill::parse("key_fob").unwrap();
//! let standard = Ticket::new(TicketId::new_v7(), CaseId::new_v7(), skill.clone(),
//!     policy.priority(Tier::Standard, false), now - Duration::minutes(3));
//! let vip = Ticket::new(TicketId::new_v7(), CaseId::new_v7(), skill,
//!     policy.priority(Tier::Vip, false), now - Duration::minutes(1));
//! let tickets = [standard, vip.clone()];
//!
//! // The VIP ticket goes first although it waited less.
//! let next = policy.next_for(&["key_fob"], &tickets, now).unwrap();
//! assert_eq!(next.id, vip.id);
//! // An expert without the skill gets nothing.
//! assert!(policy.next_for(&["gear_lock"], &tickets, now).is_none());
//!
//! let mut ticket = next.clone();
//! let expert = UserId::new_v7();
//! ticket.claim(expert, &["key_fob"], &policy, now).unwrap();
//! ticket.solve(expert, now + Duration::minutes(8)).unwrap();
//! assert!(!ticket.is_open());
//! ```

use std::cmp::Reverse;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use domain::{AlertKind, CaseId, Severity, TicketId, Tier, UserId};
use serde::{Deserialize, Serialize};

use crate::rules::Skill;

/// The queue order as SQL, mirroring [`Ticket::queue_key`].
pub const QUEUE_ORDER_SQL: &str = "priority DESC, queued_at ASC, id ASC";

domain::vocabulary! {
    /// How a ticket ended.
    pub enum TicketOutcome: "ticket outcome" {
        /// The expert fixed it on the phone; the case closes as `resolved_remotely`.
        Solved = "solved",
        /// The expert could not fix it; dispatch starts at once, at raised priority.
        Escalated = "escalated",
        /// The case ended otherwise (cancelled) while the ticket was open.
        Abandoned = "abandoned",
        /// No expert picked it up within `max_wait`; it was dispatched anyway.
        TimedOut = "timed_out",
    }
}

/// The tunable queue policy. Durations in seconds, priorities in points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct QueuePolicy {
    /// How long a claim lasts without a report or renewal (default 600 s).
    pub claim_timeout_s: u32,
    /// How long a ticket may wait unclaimed before it is dispatched anyway
    /// (`RESCUE_DIAGNOSIS_MAX_WAIT_S`, default 300 s).
    pub max_wait_s: u32,
    /// Priority points for a premium customer (default 10).
    pub premium_points: i32,
    /// Priority points for a VIP customer (default 20).
    pub vip_points: i32,
    /// Priority points for an escalated ticket: marked urgent by an agent (default 30).
    pub escalation_points: i32,
    /// Priority points added each time a claim lapses and the ticket returns to the queue
    /// (default 15): the driver has already waited through one expert.
    pub requeue_points: i32,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        Self {
            claim_timeout_s: 600,
            max_wait_s: 300,
            premium_points: 10,
            vip_points: 20,
            escalation_points: 30,
            requeue_points: 15,
        }
    }
}

impl QueuePolicy {
    /// The claim timeout as a duration.
    pub fn claim_timeout(&self) -> Duration {
        Duration::seconds(i64::from(self.claim_timeout_s))
    }

    /// The maximum unclaimed wait as a duration.
    pub fn max_wait(&self) -> Duration {
        Duration::seconds(i64::from(self.max_wait_s))
    }

    /// The priority of a new ticket: tier points, plus escalation points when an agent
    /// marked the case urgent.
    ///
    /// ```
    /// use domain::Tier;
    /// use diagnosis_core::QueuePolicy;
    /// let policy = QueuePolicy::default();
    /// assert!(policy.priority(Tier::Vip, false) > policy.priority(Tier::Premium, false));
    /// assert!(policy.priority(Tier::Standard, true) > policy.priority(Tier::Vip, false));
    /// ```
    pub fn priority(&self, tier: Tier, escalated: bool) -> i32 {
        let tier_points = match tier {
            Tier::Standard => 0,
            Tier::Premium => self.premium_points,
            Tier::Vip => self.vip_points,
        };
        let escalation = if escalated { self.escalation_points } else { 0 };
        tier_points.saturating_add(escalation)
    }

    /// The moment `ticket` becomes due for the fallback.
    pub fn fallback_at(&self, ticket: &Ticket) -> DateTime<Utc> {
        ticket.queued_at + self.max_wait()
    }

    /// Whether an expert with `expert_skills` may claim `ticket` at `now` (see the
    /// [module docs](self) for the SQL form).
    pub fn is_eligible<S: AsRef<str>>(
        &self,
        ticket: &Ticket,
        expert_skills: &[S],
        now: DateTime<Utc>,
    ) -> bool {
        ticket.is_open()
            && ticket.live_claim(now).is_none()
            && expert_skills
                .iter()
                .any(|skill| skill.as_ref() == ticket.skill.as_str())
            && now < self.fallback_at(ticket)
    }

    /// The next ticket for an expert: the first eligible ticket in queue order.
    pub fn next_for<'a, S: AsRef<str>>(
        &self,
        expert_skills: &[S],
        tickets: &'a [Ticket],
        now: DateTime<Utc>,
    ) -> Option<&'a Ticket> {
        tickets
            .iter()
            .filter(|ticket| self.is_eligible(ticket, expert_skills, now))
            .min_by_key(|ticket| ticket.queue_key())
    }

    /// The queue as experts and agents see it: open tickets not under a live claim, in
    /// queue order (including those due for the fallback but not yet dispatched).
    pub fn waiting<'a>(&self, tickets: &'a [Ticket], now: DateTime<Utc>) -> Vec<&'a Ticket> {
        let mut waiting: Vec<&Ticket> = tickets
            .iter()
            .filter(|ticket| ticket.is_open() && ticket.live_claim(now).is_none())
            .collect();
        waiting.sort_by_key(|ticket| ticket.queue_key());
        waiting
    }

    /// Tickets whose claim has expired at `now`, for the sweep that calls
    /// [`Ticket::lapse_expired_claim`] on each.
    pub fn expired_claims<'a>(&self, tickets: &'a [Ticket], now: DateTime<Utc>) -> Vec<&'a Ticket> {
        tickets
            .iter()
            .filter(|ticket| ticket.is_open() && ticket.has_expired_claim(now))
            .collect()
    }

    /// Tickets that no expert picked up within `max_wait`: each must be dispatched anyway
    /// ([`Ticket::time_out`]) with a `diagnosis_wait` alert. In queue order.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use domain::{AlertKind, CaseId, TicketId};
    /// use diagnosis_core::{QueuePolicy, Skill, Ticket};
    /// let policy = QueuePolicy { max_wait_s: 300, ..QueuePolicy::default() };
    /// let queued_at: chrono::DateTime<Utc> = "2026-05-04T02:00:00Z".parse().unwrap();
    /// let ticket = Ticket::new(TicketId::new_v7(), CaseId::new_v7(),
    ///     Skill::parse("gear_lock").unwrap(), 0, queued_at);
    /// let tickets = [ticket];
    /// assert!(policy.due_for_fallback(&tickets, queued_at + Duration::seconds(299)).is_empty());
    /// let due = policy.due_for_fallback(&tickets, queued_at + Duration::seconds(300));
    /// assert_eq!(due[0].alert_kind, AlertKind::DiagnosisWait);
    /// assert_eq!(due[0].waited_s, 300);
    /// ```
    pub fn due_for_fallback(&self, tickets: &[Ticket], now: DateTime<Utc>) -> Vec<FallbackDue> {
        let mut due: Vec<&Ticket> = tickets
            .iter()
            .filter(|ticket| {
                ticket.is_open()
                    && ticket.live_claim(now).is_none()
                    && now >= self.fallback_at(ticket)
            })
            .collect();
        due.sort_by_key(|ticket| ticket.queue_key());
        due.into_iter()
            .map(|ticket| {
                let waited_s = (now - ticket.queued_at).num_seconds().max(0);
                FallbackDue {
                    ticket_id: ticket.id,
                    case_id: ticket.case_id,
                    skill: ticket.skill.clone(),
                    waited_s,
                    alert_kind: AlertKind::DiagnosisWait,
                    severity: Severity::Warning,
                    message: format!(
                        "no expert with skill {} picked the case up within {} s (waited {waited_s} s): dispatching a vehicle",
                        ticket.skill, self.max_wait_s
                    ),
                }
            })
            .collect()
    }
}

/// The queue sort key: ascending order is queue order. Mirrors [`QUEUE_ORDER_SQL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QueueKey {
    /// Higher priority first.
    pub priority: Reverse<i32>,
    /// Then the longest wait.
    pub queued_at: DateTime<Utc>,
    /// Then the id, so the order is total.
    pub id: TicketId,
}

/// A remote-diagnosis ticket: one phone-solvable case waiting for, or being handled by, an
/// expert. A plain value the storage layer persists column by column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticket {
    /// Ticket id (UUID v7).
    pub id: TicketId,
    /// The case.
    pub case_id: CaseId,
    /// The skill an expert needs.
    pub skill: Skill,
    /// Queue priority, higher first ([`QueuePolicy::priority`]; raised on each lapse).
    pub priority: i32,
    /// When the ticket joined the queue; a lapsed claim does not reset it.
    pub queued_at: DateTime<Utc>,
    /// The expert holding the current claim.
    pub claimed_by: Option<UserId>,
    /// When the current claim was taken.
    pub claimed_at: Option<DateTime<Utc>>,
    /// When the current claim lapses unless renewed or reported.
    pub claim_expires_at: Option<DateTime<Utc>>,
    /// When an expert first claimed the ticket (time to pickup).
    pub first_claimed_at: Option<DateTime<Utc>>,
    /// How many claims lapsed.
    pub lapsed_claims: u32,
    /// How the ticket ended; `None` while open.
    pub outcome: Option<TicketOutcome>,
    /// When it ended.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Ticket {
    /// A new, unclaimed ticket.
    pub fn new(
        id: TicketId,
        case_id: CaseId,
        skill: Skill,
        priority: i32,
        queued_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            case_id,
            skill,
            priority,
            queued_at,
            claimed_by: None,
            claimed_at: None,
            claim_expires_at: None,
            first_claimed_at: None,
            lapsed_claims: 0,
            outcome: None,
            closed_at: None,
        }
    }

    /// The queue sort key.
    pub fn queue_key(&self) -> QueueKey {
        QueueKey {
            priority: Reverse(self.priority),
            queued_at: self.queued_at,
            id: self.id,
        }
    }

    /// Whether the ticket has not ended.
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }

    /// The expert holding a claim that has not expired at `now`.
    pub fn live_claim(&self, now: DateTime<Utc>) -> Option<UserId> {
        match (self.claimed_by, self.claim_expires_at) {
            (Some(expert), Some(expires_at)) if now < expires_at => Some(expert),
            (Some(expert), None) => Some(expert),
            _ => None,
        }
    }

    fn has_expired_claim(&self, now: DateTime<Utc>) -> bool {
        self.claimed_by.is_some() && self.live_claim(now).is_none()
    }

    /// `expert` claims the ticket at `now`. Refused unless it is eligible for them
    /// ([`QueuePolicy::is_eligible`]). Taking over an expired claim returns that claim's
    /// [`ClaimLapse`], for the timeline.
    pub fn claim<S: AsRef<str>>(
        &mut self,
        expert: UserId,
        expert_skills: &[S],
        policy: &QueuePolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<ClaimLapse>, QueueError> {
        self.ensure_open()?;
        if let Some(holder) = self.live_claim(now) {
            return Err(QueueError::ClaimedByAnother { holder });
        }
        if !expert_skills
            .iter()
            .any(|skill| skill.as_ref() == self.skill.as_str())
        {
            return Err(QueueError::MissingSkill {
                skill: self.skill.clone(),
            });
        }
        if now >= policy.fallback_at(self) {
            return Err(QueueError::DueForFallback);
        }
        let lapse = self.lapse_expired_claim(policy, now);
        self.claimed_by = Some(expert);
        self.claimed_at = Some(now);
        self.claim_expires_at = Some(now + policy.claim_timeout());
        self.first_claimed_at.get_or_insert(now);
        Ok(lapse)
    }

    /// The claim holder extends the claim to `now + claim_timeout` (the console's heartbeat
    /// while the call goes on). Refused when `expert` no longer holds a live claim.
    pub fn renew_claim(
        &mut self,
        expert: UserId,
        policy: &QueuePolicy,
        now: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        self.ensure_open()?;
        if self.live_claim(now) != Some(expert) {
            return Err(QueueError::NotClaimedBy { expert });
        }
        self.claim_expires_at = Some(now + policy.claim_timeout());
        Ok(())
    }

    /// The claim holder gives the ticket back to the queue (priority raised as for a lapse).
    pub fn release_claim(
        &mut self,
        expert: UserId,
        policy: &QueuePolicy,
        now: DateTime<Utc>,
    ) -> Result<ClaimLapse, QueueError> {
        self.ensure_open()?;
        if self.claimed_by != Some(expert) {
            return Err(QueueError::NotClaimedBy { expert });
        }
        Ok(self.clear_claim(LapseReason::GivenBack, policy, now))
    }

    /// If the claim has expired at `now`, returns the ticket to the queue (claim cleared,
    /// priority raised by [`QueuePolicy::requeue_points`]) and reports the lapse. Returns
    /// `None` when there is no expired claim — in particular on a second call, so each
    /// claim lapses at most once.
    pub fn lapse_expired_claim(
        &mut self,
        policy: &QueuePolicy,
        now: DateTime<Utc>,
    ) -> Option<ClaimLapse> {
        if !self.is_open() || !self.has_expired_claim(now) {
            return None;
        }
        Some(self.clear_claim(LapseReason::ClaimTimedOut, policy, now))
    }

    fn clear_claim(
        &mut self,
        reason: LapseReason,
        policy: &QueuePolicy,
        now: DateTime<Utc>,
    ) -> ClaimLapse {
        let expert = self.claimed_by.take();
        let claimed_at = self.claimed_at.take();
        let expired_at = self.claim_expires_at.take();
        self.lapsed_claims = self.lapsed_claims.saturating_add(1);
        self.priority = self.priority.saturating_add(policy.requeue_points);
        let message = match reason {
            LapseReason::ClaimTimedOut => format!(
                "the expert did not report within {} s; the ticket is back in the queue",
                policy.claim_timeout_s
            ),
            LapseReason::GivenBack => {
                "the expert gave the ticket back; it is back in the queue".to_owned()
            }
        };
        ClaimLapse {
            ticket_id: self.id,
            case_id: self.case_id,
            expert,
            claimed_at,
            expired_at,
            returned_at: now,
            reason,
            message,
        }
    }

    /// The claim holder fixed it: the case closes as `resolved_remotely`.
    pub fn solve(&mut self, expert: UserId, now: DateTime<Utc>) -> Result<(), QueueError> {
        self.close_by_holder(expert, TicketOutcome::Solved, now)
    }

    /// The claim holder could not fix it: dispatch starts at once.
    pub fn escalate(&mut self, expert: UserId, now: DateTime<Utc>) -> Result<(), QueueError> {
        self.close_by_holder(expert, TicketOutcome::Escalated, now)
    }

    /// The fallback: nobody picked the ticket up within `max_wait`. Refused while a live
    /// claim exists or before the ticket is due.
    pub fn time_out(&mut self, policy: &QueuePolicy, now: DateTime<Utc>) -> Result<(), QueueError> {
        self.ensure_open()?;
        if let Some(holder) = self.live_claim(now) {
            return Err(QueueError::ClaimedByAnother { holder });
        }
        if now < policy.fallback_at(self) {
            return Err(QueueError::NotYetDue {
                due_at: policy.fallback_at(self),
            });
        }
        self.finish(TicketOutcome::TimedOut, now);
        Ok(())
    }

    /// The case ended otherwise (cancelled) while the ticket was open.
    pub fn abandon(&mut self, now: DateTime<Utc>) -> Result<(), QueueError> {
        self.ensure_open()?;
        self.finish(TicketOutcome::Abandoned, now);
        Ok(())
    }

    /// Solving or escalating requires holding the claim. An expired claim that nobody has
    /// taken over still counts: the expert finished the call a little late, and the
    /// ticket was never offered to anyone else.
    fn close_by_holder(
        &mut self,
        expert: UserId,
        outcome: TicketOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        self.ensure_open()?;
        if self.claimed_by != Some(expert) {
            return Err(QueueError::NotClaimedBy { expert });
        }
        self.finish(outcome, now);
        Ok(())
    }

    fn finish(&mut self, outcome: TicketOutcome, now: DateTime<Utc>) {
        self.outcome = Some(outcome);
        self.closed_at = Some(now);
        self.claim_expires_at = None;
    }

    fn ensure_open(&self) -> Result<(), QueueError> {
        match self.outcome {
            Some(outcome) => Err(QueueError::Closed { outcome }),
            None => Ok(()),
        }
    }
}

/// Why a claim ended without a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LapseReason {
    /// The expert did not report or renew within the claim timeout.
    ClaimTimedOut,
    /// The expert gave the ticket back.
    GivenBack,
}

impl fmt::Display for LapseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LapseReason::ClaimTimedOut => "claim_timed_out",
            LapseReason::GivenBack => "given_back",
        })
    }
}

/// A claim that ended without a report: the ticket is back in the queue. Written to the
/// timeline as a `diagnosis_released` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimLapse {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its case.
    pub case_id: CaseId,
    /// The expert who held the claim.
    pub expert: Option<UserId>,
    /// When the claim was taken.
    pub claimed_at: Option<DateTime<Utc>>,
    /// When the claim was due to expire.
    pub expired_at: Option<DateTime<Utc>>,
    /// When the ticket went back to the queue.
    pub returned_at: DateTime<Utc>,
    /// Why.
    pub reason: LapseReason,
    /// A sentence for the timeline.
    pub message: String,
}

/// A ticket to dispatch anyway, with the alert to raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FallbackDue {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its case, to move to `dispatching`.
    pub case_id: CaseId,
    /// The skill nobody was free for.
    pub skill: Skill,
    /// How long it waited, seconds.
    pub waited_s: i64,
    /// Always `diagnosis_wait`.
    pub alert_kind: AlertKind,
    /// The alert's severity.
    pub severity: Severity,
    /// A sentence for the alert and the timeline.
    pub message: String,
}

/// Why a queue operation was refused (the server answers 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The ticket already ended.
    #[error("the ticket is already closed ({outcome})")]
    Closed {
        /// How it ended.
        outcome: TicketOutcome,
    },
    /// Another expert holds a live claim.
    #[error("the ticket is claimed by another expert")]
    ClaimedByAnother {
        /// The holder.
        holder: UserId,
    },
    /// The expert does not hold the claim.
    #[error("expert {expert} does not hold the claim on this ticket")]
    NotClaimedBy {
        /// The expert who tried.
        expert: UserId,
    },
    /// The expert lacks the ticket's skill.
    #[error("the ticket needs skill {skill}")]
    MissingSkill {
        /// The skill needed.
        skill: Skill,
    },
    /// The ticket waited too long and belongs to the fallback.
    #[error("the ticket waited past the maximum and is being dispatched")]
    DueForFallback,
    /// The fallback was applied too early.
    #[error("the ticket is not due for the fallback before {due_at}")]
    NotYetDue {
        /// When it becomes due.
        due_at: DateTime<Utc>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn t0() -> DateTime<Utc> {
        "2026-05-04T02:00:00Z".parse().expect("valid time")
    }

    fn at_s(seconds: i64) -> DateTime<Utc> {
        t0() + Duration::seconds(seconds)
    }

    fn skill(name: &str) -> Skill {
        Skill::parse(name).expect("valid skill")
    }

    /// A ticket with a readable id (`n`), queued `queued_s` after t0.
    fn ticket(n: u128, skill_name: &str, priority: i32, queued_s: i64) -> Ticket {
        Ticket::new(
            TicketId(Uuid::from_u128(n)),
            CaseId(Uuid::from_u128(1_000 + n)),
            skill(skill_name),
            priority,
            at_s(queued_s),
        )
    }

    fn expert(n: u128) -> UserId {
        UserId(Uuid::from_u128(10_000 + n))
    }

    fn policy() -> QueuePolicy {
        QueuePolicy {
            claim_timeout_s: 120,
            max_wait_s: 300,
            ..QueuePolicy::default()
        }
    }

    fn ids(tickets: &[&Ticket]) -> Vec<u128> {
        tickets.iter().map(|ticket| ticket.id.0.as_u128()).collect()
    }

    #[test]
    fn tickets_are_ordered_by_priority_then_waiting_time_then_id() {
        let tickets = [
            ticket(1, "key_fob", 0, 30),
            ticket(2, "key_fob", 10, 60),
            ticket(3, "key_fob", 0, 10),
            ticket(5, "key_fob", 0, 20),
            ticket(4, "key_fob", 0, 20),
        ];
        let waiting = policy().waiting(&tickets, at_s(100));
        assert_eq!(ids(&waiting), [2, 3, 4, 5, 1]);
    }

    #[test]
    fn vip_premium_and_escalated_tickets_get_more_priority() {
        let policy = QueuePolicy::default();
        let standard = policy.priority(Tier::Standard, false);
        let premium = policy.priority(Tier::Premium, false);
        let vip = policy.priority(Tier::Vip, false);
        let escalated = policy.priority(Tier::Standard, true);
        assert!(standard < premium && premium < vip && vip < escalated);
        assert!(policy.priority(Tier::Vip, true) > escalated);
    }

    #[test]
    fn an_expert_gets_the_first_ticket_they_are_skilled_for() {
        let tickets = [
            ticket(1, "ev_charge_port", 20, 0),
            ticket(2, "key_fob", 0, 10),
            ticket(3, "gear_lock", 0, 0),
        ];
        let next = |skills: &[&str]| {
            policy()
                .next_for(skills, &tickets, at_s(60))
                .map(|t| t.id.0.as_u128())
        };
        assert_eq!(next(&["key_fob", "gear_lock"]), Some(3));
        assert_eq!(next(&["key_fob"]), Some(2));
        assert_eq!(next(&["ev_charge_port", "key_fob"]), Some(1));
        assert_eq!(next(&["parking_brake"]), None);
        assert_eq!(next(&[]), None);
    }

    #[test]
    fn a_claimed_ticket_is_not_offered_to_another_expert() {
        let mut tickets = [ticket(1, "key_fob", 0, 0), ticket(2, "key_fob", 0, 10)];
        tickets[0]
            .claim(expert(1), &["key_fob"], &policy(), at_s(20))
            .expect("claimable");
        let next = policy()
            .next_for(&["key_fob"], &tickets, at_s(30))
            .expect("one left");
        assert_eq!(next.id.0.as_u128(), 2);
        let refused = tickets[0].claim(expert(2), &["key_fob"], &policy(), at_s(30));
        assert_eq!(
            refused,
            Err(QueueError::ClaimedByAnother { holder: expert(1) })
        );
    }

    #[test]
    fn an_expert_without_the_skill_cannot_claim() {
        let mut ticket = ticket(1, "key_fob", 0, 0);
        let refused = ticket.claim(expert(1), &["gear_lock"], &policy(), at_s(10));
        assert_eq!(
            refused,
            Err(QueueError::MissingSkill {
                skill: skill("key_fob")
            })
        );
        assert_eq!(ticket.claimed_by, None);
    }

    #[test]
    fn a_claim_expires_after_the_timeout_and_the_ticket_returns_to_the_queue_once() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(10))
            .expect("claimable");
        assert_eq!(ticket.claim_expires_at, Some(at_s(130)));

        assert!(
            ticket.lapse_expired_claim(&policy, at_s(129)).is_none(),
            "still live"
        );
        let tickets = [ticket.clone()];
        assert!(policy.expired_claims(&tickets, at_s(129)).is_empty());
        assert_eq!(policy.expired_claims(&tickets, at_s(130)).len(), 1);

        let lapse = ticket
            .lapse_expired_claim(&policy, at_s(130))
            .expect("expired");
        assert_eq!(lapse.reason, LapseReason::ClaimTimedOut);
        assert_eq!(lapse.expert, Some(expert(1)));
        assert_eq!(lapse.claimed_at, Some(at_s(10)));
        assert_eq!(lapse.expired_at, Some(at_s(130)));
        assert!(lapse.message.contains("did not report within 120 s"));
        assert_eq!(ticket.claimed_by, None);
        assert_eq!(ticket.lapsed_claims, 1);
        assert!(
            ticket.lapse_expired_claim(&policy, at_s(131)).is_none(),
            "only once per claim"
        );

        let tickets = [ticket];
        let next = policy
            .next_for(&["key_fob"], &tickets, at_s(131))
            .expect("back in the queue");
        assert_eq!(
            next.queued_at,
            t0(),
            "waiting time keeps counting from the first queueing"
        );
        assert_eq!(next.priority, policy.requeue_points);
        assert_eq!(next.first_claimed_at, Some(at_s(10)));
    }

    #[test]
    fn an_expired_claim_that_nobody_swept_can_be_taken_over_and_reports_the_lapse() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(10))
            .expect("claimable");
        let tickets = [ticket.clone()];
        assert!(policy.next_for(&["key_fob"], &tickets, at_s(130)).is_some());
        let lapse = ticket
            .claim(expert(2), &["key_fob"], &policy, at_s(130))
            .expect("claimable again")
            .expect("the previous claim lapsed");
        assert_eq!(lapse.expert, Some(expert(1)));
        assert_eq!(ticket.claimed_by, Some(expert(2)));
        assert_eq!(ticket.first_claimed_at, Some(at_s(10)));
    }

    #[test]
    fn renewing_a_claim_keeps_it_alive_and_only_the_holder_may_renew() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(0))
            .expect("claimable");
        ticket
            .renew_claim(expert(1), &policy, at_s(100))
            .expect("holder renews");
        assert_eq!(ticket.live_claim(at_s(200)), Some(expert(1)));
        assert_eq!(
            ticket.renew_claim(expert(2), &policy, at_s(150)),
            Err(QueueError::NotClaimedBy { expert: expert(2) })
        );
        assert!(
            ticket.renew_claim(expert(1), &policy, at_s(220)).is_err(),
            "expired claims cannot be renewed"
        );
    }

    #[test]
    fn an_expert_can_give_a_ticket_back() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(0))
            .expect("claimable");
        let lapse = ticket
            .release_claim(expert(1), &policy, at_s(30))
            .expect("holder");
        assert_eq!(lapse.reason, LapseReason::GivenBack);
        assert_eq!(ticket.live_claim(at_s(30)), None);
        assert!(ticket.release_claim(expert(1), &policy, at_s(31)).is_err());
    }

    #[test]
    fn a_ticket_not_claimed_within_max_wait_is_dispatched_with_a_diagnosis_wait_alert() {
        let policy = policy();
        let tickets = [ticket(1, "key_fob", 0, 0), ticket(2, "gear_lock", 50, 100)];
        assert!(policy.due_for_fallback(&tickets, at_s(299)).is_empty());
        let due = policy.due_for_fallback(&tickets, at_s(300));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].ticket_id, tickets[0].id);
        assert_eq!(due[0].case_id, tickets[0].case_id);
        assert_eq!(due[0].alert_kind, AlertKind::DiagnosisWait);
        assert_eq!(due[0].waited_s, 300);
        assert!(due[0].message.contains("key_fob"));
        let due = policy.due_for_fallback(&tickets, at_s(400));
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].ticket_id, tickets[1].id, "in queue order");

        let mut first = tickets[0].clone();
        first.time_out(&policy, at_s(300)).expect("due");
        assert_eq!(first.outcome, Some(TicketOutcome::TimedOut));
        assert_eq!(first.closed_at, Some(at_s(300)));
        assert!(
            policy.due_for_fallback(&[first], at_s(500)).is_empty(),
            "dispatched once"
        );
    }

    #[test]
    fn a_ticket_due_for_the_fallback_can_no_longer_be_claimed() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        let tickets = [ticket.clone()];
        assert!(policy.next_for(&["key_fob"], &tickets, at_s(299)).is_some());
        assert!(policy.next_for(&["key_fob"], &tickets, at_s(300)).is_none());
        assert_eq!(
            ticket.claim(expert(1), &["key_fob"], &policy, at_s(300)),
            Err(QueueError::DueForFallback)
        );
    }

    #[test]
    fn a_claimed_ticket_is_not_dispatched_until_its_claim_lapses() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(250))
            .expect("claimable");
        assert!(
            policy
                .due_for_fallback(&[ticket.clone()], at_s(360))
                .is_empty()
        );
        assert!(matches!(
            ticket.time_out(&policy, at_s(360)),
            Err(QueueError::ClaimedByAnother { .. })
        ));
        // The claim lapses at 370 s, past max_wait: the ticket goes straight to the fallback.
        ticket
            .lapse_expired_claim(&policy, at_s(370))
            .expect("lapsed");
        assert_eq!(
            policy.due_for_fallback(&[ticket.clone()], at_s(370)).len(),
            1
        );
        ticket.time_out(&policy, at_s(370)).expect("due");
    }

    #[test]
    fn the_fallback_is_refused_before_the_ticket_is_due() {
        let mut ticket = ticket(1, "key_fob", 0, 0);
        assert_eq!(
            ticket.time_out(&policy(), at_s(10)),
            Err(QueueError::NotYetDue { due_at: at_s(300) })
        );
    }

    #[test]
    fn only_the_claim_holder_can_solve_or_escalate() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        assert_eq!(
            ticket.solve(expert(1), at_s(5)),
            Err(QueueError::NotClaimedBy { expert: expert(1) })
        );
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(10))
            .expect("claimable");
        assert!(ticket.escalate(expert(2), at_s(20)).is_err());
        ticket
            .escalate(expert(1), at_s(20))
            .expect("holder escalates");
        assert_eq!(ticket.outcome, Some(TicketOutcome::Escalated));
        assert_eq!(ticket.closed_at, Some(at_s(20)));
    }

    #[test]
    fn a_holder_who_reports_just_after_the_claim_expired_still_closes_the_ticket() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(10))
            .expect("claimable");
        ticket
            .solve(expert(1), at_s(140))
            .expect("nobody took it over");
        assert_eq!(ticket.outcome, Some(TicketOutcome::Solved));
    }

    #[test]
    fn a_closed_ticket_refuses_every_operation() {
        let policy = policy();
        let mut ticket = ticket(1, "key_fob", 0, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy, at_s(10))
            .expect("claimable");
        ticket.solve(expert(1), at_s(20)).expect("holder solves");
        let closed = Err(QueueError::Closed {
            outcome: TicketOutcome::Solved,
        });
        assert_eq!(ticket.solve(expert(1), at_s(21)), closed);
        assert_eq!(ticket.escalate(expert(1), at_s(21)), closed);
        assert_eq!(ticket.abandon(at_s(21)), closed);
        assert_eq!(ticket.time_out(&policy, at_s(999)), closed);
        assert_eq!(
            ticket
                .claim(expert(2), &["key_fob"], &policy, at_s(21))
                .map(|_| ()),
            closed
        );
        assert!(ticket.lapse_expired_claim(&policy, at_s(999)).is_none());
        assert!(policy.next_for(&["key_fob"], &[ticket], at_s(22)).is_none());
    }

    #[test]
    fn a_ticket_round_trips_through_json_for_storage() {
        let mut ticket = ticket(1, "key_fob", 7, 0);
        ticket
            .claim(expert(1), &["key_fob"], &policy(), at_s(10))
            .expect("claimable");
        let json = serde_json::to_string(&ticket).expect("serializes");
        assert_eq!(
            serde_json::from_str::<Ticket>(&json).expect("deserializes"),
            ticket
        );
        assert_eq!(TicketOutcome::TimedOut.as_str(), "timed_out");
    }

    fn any_ticket() -> impl Strategy<Value = Ticket> {
        (
            0u128..40,
            proptest::sample::select(vec!["key_fob", "gear_lock", "warning_light"]),
            -3i32..3,
            0i64..600,
            proptest::option::of((0u128..3, 0i64..600)),
        )
            .prop_map(|(n, skill_name, priority, queued_s, claim)| {
                let mut ticket = ticket(n, skill_name, priority * 10, queued_s);
                if let Some((holder, claimed_s)) = claim {
                    ticket.claimed_by = Some(expert(holder));
                    ticket.claimed_at = Some(at_s(claimed_s));
                    ticket.claim_expires_at = Some(at_s(claimed_s + 120));
                }
                ticket
            })
    }

    proptest! {
        #[test]
        fn queue_order_is_a_total_order_consistent_with_the_sort_key(
            tickets in proptest::collection::vec(any_ticket(), 0..30)
        ) {
            let mut sorted = tickets.clone();
            sorted.sort_by_key(Ticket::queue_key);
            for pair in sorted.windows(2) {
                let (first, second) = (&pair[0], &pair[1]);
                let in_order = first.priority > second.priority
                    || (first.priority == second.priority && first.queued_at < second.queued_at)
                    || (first.priority == second.priority
                        && first.queued_at == second.queued_at
                        && first.id <= second.id);
                prop_assert!(in_order, "{first:?} before {second:?}");
                // Total: two different tickets never compare equal.
                if first.id != second.id {
                    prop_assert_ne!(first.queue_key(), second.queue_key());
                }
            }
        }

        #[test]
        fn next_for_is_the_first_eligible_ticket_in_queue_order(
            tickets in proptest::collection::vec(any_ticket(), 0..30),
            now_s in 0i64..900,
            skills in proptest::sample::subsequence(vec!["key_fob", "gear_lock", "warning_light"], 0..=3),
        ) {
            let policy = policy();
            let now = at_s(now_s);
            let mut sorted = tickets.clone();
            sorted.sort_by_key(Ticket::queue_key);
            let expected = sorted.iter().find(|ticket| policy.is_eligible(ticket, &skills, now));
            let chosen = policy.next_for(&skills, &tickets, now);
            prop_assert_eq!(chosen.map(|t| t.queue_key()), expected.map(|t| t.queue_key()));
            if let Some(chosen) = chosen {
                prop_assert!(skills.contains(&chosen.skill.as_str()));
                prop_assert!(chosen.live_claim(now).is_none());
                prop_assert!(now < chosen.queued_at + policy.max_wait());
            }
        }

        #[test]
        fn every_open_unclaimed_ticket_is_either_claimable_or_due_for_the_fallback(
            ticket in any_ticket(),
            now_s in 0i64..900,
        ) {
            let policy = policy();
            let now = at_s(now_s);
            let skills = [ticket.skill.as_str()];
            if ticket.live_claim(now).is_none() {
                let due = !policy.due_for_fallback(std::slice::from_ref(&ticket), now).is_empty();
                prop_assert_ne!(policy.is_eligible(&ticket, &skills, now), due);
            }
        }
    }
}
