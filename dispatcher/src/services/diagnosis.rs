//! Remote diagnosis in the server: triage of every new case with the active rules, and
//! the phone-expert queue (claims, reports, claim lapse, fallback to dispatch, the
//! phone-resolution report). The decisions are `diagnosis_core`'s pure functions; this
//! module feeds them the stored case and the clock, writes their outcome through the store
//! in one transaction each, and hands a case that needs a vehicle after all to the offer
//! cascade.

use std::sync::Arc;

use diagnosis_core::{
    DiagnosisRecord, DiagnosisReport, Outcome, QueuePolicy, ReportCase, RulesError, SafetyFlags,
    TriageDecision, TriageInput, TriageRules,
};
use domain::diagnosis::{NewTicket, TicketClaim, TicketReport};
use domain::ports::{Store, StoreError, TriageWrite};
use domain::{
    Actor, AlertKind, Case, CaseId, CaseStatus, Clock, DiagnosisTicket, EventKind, NewEvent,
    SafetyReport, Severity, TicketId, TicketOutcome, Timestamp, User,
};
use parking_lot::RwLock;

use crate::services::alerts::Alerts;
use crate::services::cascade::OfferCascade;

/// Diagnosis tickets by `event` (`queued`, `claimed`, `solved`, `escalated`, `fallback`,
/// `lapsed`) and fault `category`.
pub const DIAGNOSIS_TICKETS: &str = "rescue_diagnosis_tickets_total";
/// Triage decisions by `outcome` (`phone_solvable`, `needs_vehicle`, `safety_override`).
pub const TRIAGE_DECISIONS: &str = "rescue_triage_decisions_total";

/// The active rules with the text they were parsed from.
#[derive(Debug, Clone)]
pub struct ActiveRules {
    /// The parsed rules.
    pub rules: Arc<TriageRules>,
    /// The document as stored (TOML or JSON), or the shipped default TOML.
    pub text: String,
    /// The stored version; 0 for the shipped defaults.
    pub version: i64,
}

/// What triage did with a new case.
#[derive(Debug, Clone)]
pub enum Triaged {
    /// Queued for a phone expert (`diagnosing`).
    Queued(Box<DiagnosisTicket>),
    /// Sent to dispatch (`dispatching`).
    Dispatch,
    /// The case was not `new` any more: someone else triaged it.
    AlreadyTriaged,
}

/// A triage decision, ready to be written.
#[derive(Debug, Clone)]
pub struct Decided {
    /// What to write with the case.
    pub write: TriageWrite,
    label: &'static str,
    reasons: String,
}

impl Decided {
    /// Whether first offers ride along with the case.
    pub fn has_offers(&self) -> bool {
        matches!(&self.write, TriageWrite::Dispatch { offers, .. } if !offers.is_empty())
    }

    /// Writes the case without first offers: the matcher makes them.
    pub fn drop_offers(&mut self) {
        if let TriageWrite::Dispatch { offers, .. } = &mut self.write {
            offers.clear();
        }
    }

    /// Counts and logs the decision, once it is stored.
    pub fn record(&self, case_id: CaseId) {
        metrics::counter!(TRIAGE_DECISIONS, "outcome" => self.label).increment(1);
        tracing::info!(case_id = %case_id, outcome = self.label, reasons = %self.reasons, "case triaged");
    }
}

/// The remote-diagnosis desk of one server.
pub struct DiagnosisDesk {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    policy: QueuePolicy,
    rules: RwLock<ActiveRules>,
    cascade: Arc<OfferCascade>,
}

fn category_label(ticket: &DiagnosisTicket) -> &'static str {
    ticket.category.as_str()
}

/// The safety facts of a request as triage reads them.
pub fn safety_flags(report: &SafetyReport) -> SafetyFlags {
    SafetyFlags {
        accident: report.accident,
        injury: report.injury,
        smoke_or_fire: report.smoke_or_fire,
        vulnerable_customer: report.vulnerable_customer,
        requests_vehicle: report.requests_vehicle,
    }
}

/// Counts a ticket event for the metrics.
pub fn count_ticket(event: &'static str, ticket: &DiagnosisTicket) {
    metrics::counter!(DIAGNOSIS_TICKETS, "event" => event, "category" => category_label(ticket))
        .increment(1);
}

/// Parses a rules document: JSON when `json` (or when it looks like JSON), else TOML.
pub fn parse_rules(text: &str, json: bool) -> Result<TriageRules, RulesError> {
    if json {
        TriageRules::from_json(text)
    } else {
        TriageRules::parse(text)
    }
}

fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

impl DiagnosisDesk {
    /// The desk with the stored rules (or the shipped defaults when none were stored).
    pub async fn load(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        policy: QueuePolicy,
        cascade: Arc<OfferCascade>,
    ) -> anyhow::Result<DiagnosisDesk> {
        let rules = Self::read_rules(store.as_ref()).await?;
        Ok(DiagnosisDesk {
            store,
            clock,
            policy,
            rules: RwLock::new(rules),
            cascade,
        })
    }

    async fn read_rules(store: &dyn Store) -> anyhow::Result<ActiveRules> {
        match store.triage_rules().await? {
            Some((text, version)) => {
                let rules = parse_rules(&text, looks_like_json(&text))
                    .map_err(|error| anyhow::anyhow!("stored triage rules v{version}: {error}"))?;
                Ok(ActiveRules {
                    rules: Arc::new(rules),
                    text,
                    version,
                })
            }
            None => Ok(ActiveRules {
                rules: Arc::new(TriageRules::defaults()),
                text: diagnosis_core::DEFAULT_RULES_TOML.to_owned(),
                version: 0,
            }),
        }
    }

    /// The queue policy.
    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    /// The active rules.
    pub fn active_rules(&self) -> ActiveRules {
        self.rules.read().clone()
    }

    /// Picks up rules another instance stored.
    pub async fn refresh_rules(&self) -> Result<(), StoreError> {
        let stored_version = self
            .store
            .triage_rules()
            .await?
            .map_or(0, |(_, version)| version);
        if stored_version != self.rules.read().version {
            match Self::read_rules(self.store.as_ref()).await {
                Ok(rules) => *self.rules.write() = rules,
                Err(error) => {
                    tracing::warn!(error = %error, "stored triage rules unreadable; keeping the active ones")
                }
            }
        }
        Ok(())
    }

    /// Validates and stores a new rules document; the old rules stay active when it is
    /// refused.
    pub async fn replace_rules(
        &self,
        text: &str,
        json: bool,
        actor: &Actor,
    ) -> Result<Result<ActiveRules, RulesError>, StoreError> {
        let rules = match parse_rules(text, json) {
            Ok(rules) => rules,
            Err(error) => return Ok(Err(error)),
        };
        let version = self
            .store
            .save_triage_rules(text, actor, self.clock.now())
            .await?;
        let active = ActiveRules {
            rules: Arc::new(rules),
            text: text.to_owned(),
            version,
        };
        *self.rules.write() = active.clone();
        tracing::info!(version, "triage rules replaced");
        Ok(Ok(active))
    }

    /// Triages a new case with the active rules and records the decision: a
    /// phone-solvable case is queued (`diagnosing`), any other goes to `dispatching`.
    /// `expected_truck_eta_s` estimates what a truck would take, for the report.
    #[tracing::instrument(skip_all, fields(case_id = %case_id))]
    pub async fn triage(
        &self,
        case_id: CaseId,
        expected_truck_eta_s: impl FnOnce(&Case) -> Option<u32>,
    ) -> Result<Triaged, StoreError> {
        let Some(case) = self.store.get_case(case_id).await? else {
            return Err(StoreError::NotFound);
        };
        if case.status != CaseStatus::New {
            return Ok(Triaged::AlreadyTriaged);
        }
        let safety = self.reported_safety(case_id).await?;
        let decided = self.decide(&case, safety, expected_truck_eta_s);
        let result = match &decided.write {
            TriageWrite::Queue { event, ticket } => self
                .store
                .queue_for_diagnosis(case_id, ticket, event)
                .await
                .map(|ticket| {
                    count_ticket("queued", &ticket);
                    Triaged::Queued(Box::new(ticket))
                }),
            TriageWrite::Dispatch { event, reason, .. } => self
                .store
                .triage_to_dispatch(case_id, event, reason)
                .await
                .map(|_| Triaged::Dispatch),
        };
        if result.is_ok() {
            decided.record(case_id);
        }
        match result {
            Err(StoreError::Conflict(_)) => Ok(Triaged::AlreadyTriaged),
            other => other,
        }
    }

    /// Triage of a new case by the active rules: what to write for it (the `triage`
    /// event, and the ticket or the dispatch reason). Nothing is stored or counted yet.
    pub fn decide(
        &self,
        case: &Case,
        safety: SafetyFlags,
        expected_truck_eta_s: impl FnOnce(&Case) -> Option<u32>,
    ) -> Decided {
        let rules = self.rules.read().clone();
        // Darkness is judged at the moment of the request.
        let input = TriageInput::for_case(case, safety, case.created_at);
        let decision = diagnosis_core::triage(&rules.rules, &input);
        let now = domain::time::to_storage_precision(self.clock.now());
        let event = triage_event(&decision, rules.version, now);
        let label = if decision.is_phone_solvable() {
            "phone_solvable"
        } else if decision.is_safety_override() {
            "safety_override"
        } else {
            "needs_vehicle"
        };
        let write = match &decision.outcome {
            Outcome::PhoneSolvable {
                skill,
                expected_fix_s,
                rule_id,
                ..
            } => TriageWrite::Queue {
                event,
                ticket: NewTicket {
                    id: TicketId::new_v7(),
                    skill: skill.as_str().to_owned(),
                    rule_id: rule_id.as_str().to_owned(),
                    expected_fix_s: *expected_fix_s,
                    expected_truck_eta_s: expected_truck_eta_s(case),
                    priority: self.policy.priority(case.tier, false),
                    queued_at: now,
                },
            },
            Outcome::Dispatch {
                safety_override, ..
            } => TriageWrite::Dispatch {
                event,
                reason: if *safety_override {
                    "safety_override"
                } else {
                    "needs_vehicle"
                }
                .to_owned(),
                offers: Vec::new(),
            },
        };
        Decided {
            write,
            label,
            reasons: decision.summary(),
        }
    }

    /// The safety facts of the case request, recorded with its `created` event.
    async fn reported_safety(&self, case_id: CaseId) -> Result<SafetyFlags, StoreError> {
        let timeline = self.store.timeline(case_id).await?;
        let report: SafetyReport = timeline
            .iter()
            .find(|event| event.kind == EventKind::Created)
            .and_then(|event| serde_json::from_value(event.data["safety"].clone()).ok())
            .unwrap_or_default();
        Ok(safety_flags(&report))
    }

    /// The next ticket the expert is skilled for, claimed for them, with its case; `None`
    /// when there is nothing to claim.
    pub async fn claim(
        &self,
        expert: &User,
    ) -> Result<Option<(DiagnosisTicket, Case)>, StoreError> {
        let now = self.clock.now();
        let claim = TicketClaim {
            expert: expert.id,
            skills: expert.skills.clone(),
            at: now,
            expires_at: now + self.policy.claim_timeout(),
            fallback_cutoff: now - self.policy.max_wait(),
        };
        let Some(ticket) = self.store.claim_ticket(&claim).await? else {
            return Ok(None);
        };
        count_ticket("claimed", &ticket);
        tracing::info!(ticket_id = %ticket.id, case_id = %ticket.case_id, "diagnosis ticket claimed");
        let case = self
            .store
            .get_case(ticket.case_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(Some((ticket, case)))
    }

    /// The open tickets (up to 500, the queue's order) and how many of them wait for an
    /// expert (unclaimed, or their claim lapsed).
    pub async fn queue(&self) -> Result<(Vec<DiagnosisTicket>, usize), StoreError> {
        let tickets = self.store.open_tickets(500).await?;
        let now = self.clock.now();
        let waiting = tickets
            .iter()
            .filter(|ticket| {
                ticket.claimed_by.is_none() || ticket.claim_expires_at.is_some_and(|at| at <= now)
            })
            .count();
        Ok((tickets, waiting))
    }

    /// The phone-resolution report over the cases created in `[from, to)`.
    pub async fn report_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<DiagnosisReport, StoreError> {
        let rows = self.store.diagnosis_report_rows(from, to).await?;
        let cases: Vec<ReportCase> = rows
            .into_iter()
            .map(|row| ReportCase {
                case_id: row.case_id,
                category: row.category,
                diagnosis: row.ticket.and_then(|ticket| {
                    Some(DiagnosisRecord {
                        outcome: ticket.outcome?.as_str().parse().ok()?,
                        queued_at: ticket.queued_at,
                        first_claimed_at: ticket.first_claimed_at,
                        closed_at: ticket.closed_at?,
                        expected_truck_eta_s: ticket.expected_truck_eta_s,
                    })
                }),
            })
            .collect();
        Ok(DiagnosisReport::compute(&cases))
    }

    /// The expert reports `solved` or `escalated` on a ticket they hold. An escalated case
    /// is dispatched at once, in the background.
    pub async fn report(
        &self,
        ticket_id: TicketId,
        expert: &User,
        outcome: TicketOutcome,
        notes: Option<String>,
    ) -> Result<(DiagnosisTicket, Case), StoreError> {
        let report = TicketReport {
            outcome,
            expert: expert.id,
            notes,
            priority_points: self.policy.escalation_points,
            at: self.clock.now(),
        };
        let (ticket, case) = self.store.report_ticket(ticket_id, &report).await?;
        count_ticket(
            if outcome == TicketOutcome::Solved {
                "solved"
            } else {
                "escalated"
            },
            &ticket,
        );
        tracing::info!(ticket_id = %ticket.id, case_id = %case.id, outcome = %outcome, "diagnosis ticket reported");
        if outcome == TicketOutcome::Escalated {
            self.cascade.spawn_dispatch(case.id);
        }
        Ok((ticket, case))
    }

    /// Returns expired claims to the queue. Returns how many lapsed.
    pub async fn lapse_expired(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut lapsed = 0;
        for id in self.store.expired_claims(now, 200).await? {
            if let Some(ticket) = self
                .store
                .lapse_claim(id, now, self.policy.requeue_points)
                .await?
            {
                count_ticket("lapsed", &ticket);
                tracing::info!(ticket_id = %ticket.id, case_id = %ticket.case_id, "diagnosis claim lapsed");
                lapsed += 1;
            }
        }
        Ok(lapsed)
    }

    /// Dispatches the tickets nobody picked up within the maximum wait, raising a
    /// `diagnosis_wait` alert for each, and makes each case's first offer. Returns their
    /// cases.
    pub async fn fall_back_due(&self) -> Result<Vec<CaseId>, StoreError> {
        let now = self.clock.now();
        let cutoff = now - self.policy.max_wait();
        let mut cases = Vec::new();
        for id in self
            .store
            .tickets_due_for_fallback(cutoff, now, 200)
            .await?
        {
            let Some(ticket) = self.store.get_ticket(id).await? else {
                continue;
            };
            let waited_s = (now - ticket.queued_at).num_seconds().max(0);
            let alert = Alerts::draft(
                AlertKind::DiagnosisWait,
                Severity::Warning,
                None,
                format!(
                    "no expert with skill {} picked the case up within {} s (waited {waited_s} s): dispatching a vehicle",
                    ticket.skill, self.policy.max_wait_s
                ),
            );
            if let Some((ticket, case)) = self.store.fall_back(id, cutoff, now, &alert).await? {
                count_ticket("fallback", &ticket);
                Alerts::raised(case.id, &alert);
                tracing::info!(ticket_id = %ticket.id, case_id = %case.id, waited_s, "diagnosis wait exceeded: dispatching");
                cases.push(case.id);
            }
        }
        for case_id in &cases {
            if let Err(error) = self.cascade.dispatch(*case_id).await {
                tracing::warn!(case_id = %case_id, error = %error, "dispatch after the diagnosis wait failed; the retry sweep will pick it up");
            }
        }
        Ok(cases)
    }
}

/// The `triaged` timeline event: the outcome and every reason.
fn triage_event(decision: &TriageDecision, rules_version: i64, at: domain::Timestamp) -> NewEvent {
    let outcome = if decision.is_phone_solvable() {
        "phone_solvable"
    } else {
        "needs_vehicle"
    };
    NewEvent::new(
        EventKind::Triaged,
        Actor::System,
        at,
        serde_json::json!({
            "outcome": outcome,
            "safety_override": decision.is_safety_override(),
            "decision": decision.outcome,
            "reasons": decision.reasons,
            "summary": decision.summary(),
            "rules_version": rules_version,
        }),
    )
}
