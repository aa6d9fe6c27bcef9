//! Remote-diagnosis queries, written once for both backends (see `queries/mod.rs`): the
//! phone-expert queue, triage outcomes, the rules document, masked-call bindings and the
//! report rows.
//!
//! Locks are taken case first, then ticket, like every dispatch path, except the claim:
//! it takes the ticket and its case together in one statement that never waits.
//! `B::CLAIM_TICKET_SQL` differs per backend: PostgreSQL selects the next ticket `FOR
//! UPDATE OF t, c SKIP LOCKED`, so concurrent experts on any number of instances each get
//! a different ticket without queueing behind each other; SQLite's single writer
//! connection makes the select-then-update of one transaction atomic by itself. The
//! conditional `UPDATE … WHERE outcome IS NULL AND (claimed_by IS NULL OR claim_expires_at
//! <= now)` re-checks the ticket under the lock on both.
//!
//! A dispatched intake (a new case that triage sends to a vehicle, with its first offer)
//! is written by the transaction of `dispatch_new_in_tx`, unless the backend has a
//! one-statement intake: `create_triaged_case` goes through
//! [`Backend::create_triaged_case`], whose default is that transaction and which
//! PostgreSQL overrides with `PgStore::create_dispatched_case_in_one_statement` for every
//! dispatched intake (and sets [`Backend::ONE_STATEMENT_INTAKE`]). SQLite has none: its
//! statements are calls into the process, not round trips. Both paths must write the same
//! rows: `storage/tests/intake_one_statement.rs` compares them.

use crate::backend::{Backend, SqlStore, Transaction as _};
use crate::sql::{Conn, query};

// The helpers are for the queries of this crate, over its crate-private `Backend`.
#[allow(private_bounds)]
impl<B: Backend> SqlStore<B> {
    /// Whether this backend writes a dispatched intake (the case, its first offer,
    /// its events and its idempotency key) in one statement of its own instead of the
    /// transaction of `dispatch_new_in_tx`, which writes the same rows.
    pub const ONE_STATEMENT_INTAKE: bool = B::ONE_STATEMENT_INTAKE;

    /// `create_triaged_case` through the transaction, whatever the triage: the path
    /// every backend has. Public for the test that compares it with a one-statement
    /// intake; callers use `create_triaged_case`.
    #[doc(hidden)]
    pub async fn create_triaged_case_in_transaction(
        &self,
        case: &domain::Case,
        created: &domain::NewEvent,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
        triage: &domain::ports::TriageWrite,
    ) -> Result<
        (
            domain::ports::CreateCaseOutcome,
            Option<domain::ports::TriagedCase>,
        ),
        domain::ports::StoreError,
    > {
        let mut tx = self.begin_urgent_write().await?;
        let triaged = match triage {
            domain::ports::TriageWrite::Queue { event, ticket } => {
                if let Some(replayed) =
                    Self::insert_case(&mut tx, case, created, idempotency).await?
                {
                    tx.rollback().await?;
                    return Ok((replayed, None));
                }
                domain::ports::TriagedCase::Queued(Box::new(
                    Self::queue_in_tx(&mut tx, case.id, ticket, event).await?,
                ))
            }
            domain::ports::TriageWrite::Dispatch {
                event,
                reason,
                offers,
            } => {
                if let Some(replayed) =
                    Self::claim_idempotency_key(&mut tx, case.id, idempotency).await?
                {
                    tx.rollback().await?;
                    return Ok((replayed, None));
                }
                Self::dispatch_new_in_tx(&mut tx, case, created, event, reason, offers).await?
            }
        };
        tx.commit().await?;
        Ok((
            domain::ports::CreateCaseOutcome::Created(Box::new(Self::stored_case(case))),
            Some(triaged),
        ))
    }

    pub(crate) async fn fetch_ticket(
        executor: impl Conn,
        id: domain::TicketId,
    ) -> Result<Option<domain::DiagnosisTicket>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM diagnosis_tickets WHERE id = $1",
            crate::rows::TICKET_COLUMNS
        );
        let row: Option<crate::rows::TicketRow> = query(sql)
            .bind(id.as_uuid())
            .fetch_optional(executor)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    /// Closes the case's open ticket as `abandoned` (the case is cancelled) and
    /// releases its virtual number. Called under the case lock.
    pub(crate) async fn abandon_diagnosis(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        at: domain::Timestamp,
    ) -> Result<(), domain::ports::StoreError> {
        query(
            "UPDATE diagnosis_tickets SET outcome = 'abandoned', closed_at = $2 WHERE case_id = $1 AND outcome IS NULL",
        )
        .bind(case_id.as_uuid())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Self::release_phone_in_tx(tx, case_id, at).await
    }

    /// Releases the case's live virtual number, if any.
    pub(crate) async fn release_phone_in_tx(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        at: domain::Timestamp,
    ) -> Result<(), domain::ports::StoreError> {
        query(
            "UPDATE phone_bindings SET released_at = $2 WHERE case_id = $1 AND released_at IS NULL",
        )
        .bind(case_id.as_uuid())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// `queue_for_diagnosis` in `tx`.
    pub(crate) async fn queue_in_tx(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        ticket: &domain::diagnosis::NewTicket,
        triage: &domain::NewEvent,
    ) -> Result<domain::DiagnosisTicket, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(ticket.queued_at);
        Self::lock_new_case(tx, case_id, at).await?;
        Self::append_in_tx(tx, case_id, triage.clone()).await?;
        Self::change_status(
            tx,
            case_id,
            domain::CaseStatus::New,
            domain::CaseStatus::Diagnosing,
            None,
            &domain::Actor::System,
            at,
            "phone_solvable",
        )
        .await?;
        query(
            "INSERT INTO diagnosis_tickets (id, case_id, category, skill, rule_id, expected_fix_s, expected_truck_eta_s, priority, queued_at) \
             VALUES ($1, $2, (SELECT fault_category FROM cases WHERE id = $2), $3, $4, $5, $6, $7, $8)",
        )
        .bind(ticket.id.as_uuid())
        .bind(case_id.as_uuid())
        .bind(&ticket.skill)
        .bind(&ticket.rule_id)
        .bind(i32::try_from(ticket.expected_fix_s).unwrap_or(i32::MAX))
        .bind(ticket.expected_truck_eta_s.map(|eta| i32::try_from(eta).unwrap_or(i32::MAX)))
        .bind(ticket.priority)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Self::append_in_tx(
            tx,
            case_id,
            domain::NewEvent::new(
                domain::EventKind::DiagnosisQueued,
                domain::Actor::System,
                at,
                serde_json::json!({"ticket_id": ticket.id, "skill": ticket.skill, "priority": ticket.priority,
                                   "rule_id": ticket.rule_id, "expected_fix_s": ticket.expected_fix_s}),
            ),
        )
        .await?;
        let stored = Self::fetch_ticket(&mut *tx, ticket.id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        Ok(stored)
    }

    /// `triage_to_dispatch` in `tx`.
    pub(crate) async fn dispatch_in_tx(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        triage: &domain::NewEvent,
        reason: &str,
    ) -> Result<domain::Case, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(triage.at);
        Self::lock_new_case(tx, case_id, at).await?;
        Self::append_in_tx(tx, case_id, triage.clone()).await?;
        Self::change_status(
            tx,
            case_id,
            domain::CaseStatus::New,
            domain::CaseStatus::Dispatching,
            None,
            &domain::Actor::System,
            at,
            reason,
        )
        .await?;
        let case = Self::fetch_case(&mut *tx, case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        Ok(case)
    }

    /// Writes a new case that triage sends to a vehicle, with its first offer when
    /// one of `offers` can still be claimed: the case row goes in `dispatching` in its
    /// first round and its events in one statement, numbered here. Nobody else sees
    /// the case before the commit, so nothing needs locking or reading back; four
    /// statements instead of one per event and per status change.
    pub(crate) async fn dispatch_new_in_tx(
        tx: &mut B::Tx<'_>,
        case: &domain::Case,
        created: &domain::NewEvent,
        triage: &domain::NewEvent,
        reason: &str,
        offers: &[(domain::ports::NewOffer, domain::NewEvent)],
    ) -> Result<domain::ports::TriagedCase, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(triage.at);
        let (to, changed) = crate::rows::dispatching_event(at, reason)?;
        // The vehicle is claimed before the case row exists: the claim waits on
        // nothing this transaction holds, so the lock order (case, offers,
        // vehicles) of the other operations cannot deadlock with it.
        let mut claimed = None;
        for (offer, ranking) in offers {
            if offer.case_id != case.id {
                return Err(domain::ports::StoreError::Conflict(
                    "a first offer names another case".into(),
                ));
            }
            if let Some(times) = Self::claim_for_offer(tx, offer).await? {
                claimed = Some((offer, ranking, times));
                break;
            }
        }
        let mut events = vec![created, triage, &changed];
        let last_at = match &claimed {
            Some((_, ranking, (sent_at, _))) => {
                events.push(ranking);
                *sent_at
            }
            None => at,
        };
        let seqs = i64::try_from(events.len() + usize::from(claimed.is_some())).unwrap_or(i64::MAX);
        let row = crate::rows::NewCaseRow {
            status: to,
            dispatch_round: 1,
            last_event_seq: seqs,
            updated_at: last_at,
        };
        Self::insert_case_row(tx, case, &row).await?;
        let mut dispatching = Self::stored_case(case);
        dispatching.status = to;
        dispatching.updated_at = last_at;
        let triaged = match claimed {
            Some((offer, _, times)) => {
                let (stored, sent) = Self::store_offer(tx, offer, times).await?;
                events.push(&sent);
                Self::insert_events(tx, case.id, 1, &events).await?;
                domain::ports::TriagedCase::Offered {
                    case: Box::new(dispatching),
                    offer: Box::new(stored),
                }
            }
            None => {
                Self::insert_events(tx, case.id, 1, &events).await?;
                domain::ports::TriagedCase::Dispatching(Box::new(dispatching))
            }
        };
        Ok(triaged)
    }

    /// Locks the case and requires it to be `new` (triage happens once).
    pub(crate) async fn lock_new_case(
        tx: &mut B::Tx<'_>,
        case_id: domain::CaseId,
        at: domain::Timestamp,
    ) -> Result<(), domain::ports::StoreError> {
        let status = Self::lock_case(tx, case_id, at).await?;
        if status != domain::CaseStatus::New {
            return Err(domain::ports::StoreError::Conflict(format!(
                "case is `{status}`, it was triaged already"
            )));
        }
        Ok(())
    }

    pub(crate) async fn bind_phone_once(
        &self,
        binding: &domain::diagnosis::NewPhoneBinding,
    ) -> Result<Option<domain::diagnosis::PhoneBindingRecord>, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(binding.at);
        let mut tx = self.begin_write().await?;
        // The case lock serialises binds of one case.
        Self::lock_case(&mut tx, binding.case_id, at).await?;
        let sql = format!(
            "UPDATE phone_bindings SET party_a = $2, party_b = $3, bound_at = $4 \
             WHERE case_id = $1 AND released_at IS NULL RETURNING {}",
            crate::rows::PHONE_BINDING_COLUMNS
        );
        let rebound: Option<crate::rows::PhoneBindingRow> = query(sql)
            .bind(binding.case_id.as_uuid())
            .bind(&binding.party_a)
            .bind(&binding.party_b)
            .bind(at)
            .fetch_optional(&mut tx)
            .await?;
        if let Some(row) = rebound {
            tx.commit().await?;
            return Ok(Some(row.into()));
        }
        // Per number: is it live, and when was it last released?
        let usage: Vec<(String, i64, Option<chrono::DateTime<chrono::Utc>>)> = query(
            "SELECT virtual_number, SUM(CASE WHEN released_at IS NULL THEN 1 ELSE 0 END), MAX(released_at) \
             FROM phone_bindings GROUP BY virtual_number",
        )
        .fetch_all(&mut tx)
        .await?;
        let usage: std::collections::HashMap<String, (i64, Option<chrono::DateTime<chrono::Utc>>)> =
            usage
                .into_iter()
                .map(|(number, live, released)| (number, (live, released)))
                .collect();
        // Never-used numbers first in configuration order, then the least recently
        // released (the policy of `diagnosis_core::NumberPool`).
        let chosen = binding
            .pool
            .iter()
            .enumerate()
            .filter(|(_, number)| usage.get(*number).is_none_or(|(live, _)| *live == 0))
            .min_by_key(|(position, number)| {
                (
                    usage.get(*number).and_then(|(_, released)| *released),
                    *position,
                )
            })
            .map(|(_, number)| number.clone());
        let Some(number) = chosen else {
            return Ok(None);
        };
        let sql = format!(
            "INSERT INTO phone_bindings (virtual_number, case_id, party_a, party_b, bound_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {}",
            crate::rows::PHONE_BINDING_COLUMNS
        );
        let row: crate::rows::PhoneBindingRow = query(sql)
            .bind(&number)
            .bind(binding.case_id.as_uuid())
            .bind(&binding.party_a)
            .bind(&binding.party_b)
            .bind(at)
            .fetch_one(&mut tx)
            .await?;
        Self::append_in_tx(
            &mut tx,
            binding.case_id,
            domain::NewEvent::new(
                domain::EventKind::CallBridged,
                domain::Actor::System,
                at,
                serde_json::json!({"virtual_number": number}),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(row.into()))
    }
}

#[async_trait::async_trait]
impl<B: Backend> domain::ports::DiagnosisStore for SqlStore<B> {
    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case.id))]
    async fn create_triaged_case(
        &self,
        case: &domain::Case,
        created: &domain::NewEvent,
        idempotency: Option<&domain::ports::IdempotencyClaim>,
        triage: &domain::ports::TriageWrite,
    ) -> Result<
        (
            domain::ports::CreateCaseOutcome,
            Option<domain::ports::TriagedCase>,
        ),
        domain::ports::StoreError,
    > {
        B::create_triaged_case(self, case, created, idempotency, triage).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id, ticket_id = %ticket.id))]
    async fn queue_for_diagnosis(
        &self,
        case_id: domain::CaseId,
        ticket: &domain::diagnosis::NewTicket,
        triage: &domain::NewEvent,
    ) -> Result<domain::DiagnosisTicket, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let stored = Self::queue_in_tx(&mut tx, case_id, ticket, triage).await?;
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn triage_to_dispatch(
        &self,
        case_id: domain::CaseId,
        triage: &domain::NewEvent,
        reason: &str,
    ) -> Result<domain::Case, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let case = Self::dispatch_in_tx(&mut tx, case_id, triage, reason).await?;
        tx.commit().await?;
        Ok(case)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, user_id = %claim.expert))]
    async fn claim_ticket(
        &self,
        claim: &domain::diagnosis::TicketClaim,
    ) -> Result<Option<domain::DiagnosisTicket>, domain::ports::StoreError> {
        if claim.skills.is_empty() {
            return Ok(None);
        }
        let at = domain::time::to_storage_precision(claim.at);
        let expires_at = domain::time::to_storage_precision(claim.expires_at);
        let mut tx = self.begin_write().await?;
        let candidate: Option<(uuid::Uuid, uuid::Uuid)> = query(B::CLAIM_TICKET_SQL)
            .bind(at)
            .bind(sqlx::types::Json(&claim.skills))
            .bind(domain::time::to_storage_precision(claim.fallback_cutoff))
            .fetch_optional(&mut tx)
            .await?;
        let Some((ticket_id, case_id)) = candidate else {
            return Ok(None);
        };
        let previous: Option<(Option<uuid::Uuid>,)> = query(
            "UPDATE diagnosis_tickets SET claimed_by = $2, claimed_at = $3, claim_expires_at = $4, \
             first_claimed_at = COALESCE(first_claimed_at, $3) \
             WHERE id = $1 AND outcome IS NULL AND (claimed_by IS NULL OR claim_expires_at <= $3) \
             RETURNING claimed_by",
        )
        .bind(ticket_id)
        .bind(claim.expert.as_uuid())
        .bind(at)
        .bind(expires_at)
        .fetch_optional(&mut tx)
        .await?;
        if previous.is_none() {
            // Changed between the select and the update: nothing claimed this time.
            return Ok(None);
        }
        Self::append_in_tx(
            &mut tx,
            case_id.into(),
            domain::NewEvent::new(
                domain::EventKind::DiagnosisClaimed,
                domain::Actor::User { role: domain::Role::Expert, id: claim.expert },
                at,
                serde_json::json!({"ticket_id": ticket_id, "expert": claim.expert, "claim_expires_at": expires_at}),
            ),
        )
        .await?;
        let ticket = Self::fetch_ticket(&mut tx, ticket_id.into())
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Some(ticket))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, ticket_id = %id))]
    async fn get_ticket(
        &self,
        id: domain::TicketId,
    ) -> Result<Option<domain::DiagnosisTicket>, domain::ports::StoreError> {
        Self::fetch_ticket(self.reader(), id).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn case_ticket(
        &self,
        case_id: domain::CaseId,
    ) -> Result<Option<domain::DiagnosisTicket>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM diagnosis_tickets WHERE case_id = $1",
            crate::rows::TICKET_COLUMNS
        );
        let row: Option<crate::rows::TicketRow> = query(sql)
            .bind(case_id.as_uuid())
            .fetch_optional(self.reader())
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn open_tickets(
        &self,
        limit: u32,
    ) -> Result<Vec<domain::DiagnosisTicket>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM diagnosis_tickets WHERE outcome IS NULL ORDER BY priority DESC, queued_at ASC, id ASC LIMIT $1",
            crate::rows::TICKET_COLUMNS
        );
        let rows: Vec<crate::rows::TicketRow> = query(sql)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, ticket_id = %id, user_id = %report.expert))]
    async fn report_ticket(
        &self,
        id: domain::TicketId,
        report: &domain::diagnosis::TicketReport,
    ) -> Result<(domain::DiagnosisTicket, domain::Case), domain::ports::StoreError> {
        use domain::TicketOutcome;
        let (to, kind, reason) = match report.outcome {
            TicketOutcome::Solved => (
                domain::CaseStatus::ResolvedRemotely,
                domain::EventKind::DiagnosisSolved,
                "solved_by_phone",
            ),
            TicketOutcome::Escalated => (
                domain::CaseStatus::Dispatching,
                domain::EventKind::DiagnosisEscalated,
                "diagnosis_escalated",
            ),
            other => {
                return Err(domain::ports::StoreError::Conflict(format!(
                    "an expert cannot report `{other}`"
                )));
            }
        };
        let at = domain::time::to_storage_precision(report.at);
        let Some(ticket) = Self::fetch_ticket(self.reader(), id).await? else {
            return Err(domain::ports::StoreError::NotFound);
        };
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, ticket.case_id, at).await?;
        let points = if report.outcome == TicketOutcome::Escalated {
            report.priority_points
        } else {
            0
        };
        let updated = query(
            "UPDATE diagnosis_tickets SET outcome = $3, notes = $4, closed_at = $5, priority = priority + $6 \
             WHERE id = $1 AND outcome IS NULL AND claimed_by = $2",
        )
        .bind(id.as_uuid())
        .bind(report.expert.as_uuid())
        .bind(report.outcome.as_str())
        .bind(&report.notes)
        .bind(at)
        .bind(points)
        .execute(&mut tx)
        .await?;
        if updated != 1 {
            let current = Self::fetch_ticket(&mut tx, id)
                .await?
                .ok_or(domain::ports::StoreError::NotFound)?;
            return Err(domain::ports::StoreError::Conflict(match current.outcome {
                Some(outcome) => format!("the ticket is already closed ({outcome})"),
                None => "you do not hold the claim on this ticket (claim it first, or it lapsed to another expert)".to_owned(),
            }));
        }
        let actor = domain::Actor::User {
            role: domain::Role::Expert,
            id: report.expert,
        };
        Self::append_in_tx(
            &mut tx,
            ticket.case_id,
            domain::NewEvent::new(
                kind,
                actor.clone(),
                at,
                serde_json::json!({"ticket_id": id, "notes": report.notes, "priority": ticket.priority + points}),
            ),
        )
        .await?;
        Self::change_status(
            &mut tx,
            ticket.case_id,
            status,
            to,
            None,
            &actor,
            at,
            reason,
        )
        .await?;
        if to == domain::CaseStatus::ResolvedRemotely {
            Self::release_phone_in_tx(&mut tx, ticket.case_id, at).await?;
        }
        let ticket = Self::fetch_ticket(&mut tx, id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        let case = Self::fetch_case(&mut tx, ticket.case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok((ticket, case))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn expired_claims(
        &self,
        now: domain::Timestamp,
        limit: u32,
    ) -> Result<Vec<domain::TicketId>, domain::ports::StoreError> {
        let rows: Vec<(uuid::Uuid,)> = query(
            "SELECT id FROM diagnosis_tickets WHERE outcome IS NULL AND claimed_by IS NOT NULL \
             AND claim_expires_at <= $1 ORDER BY claim_expires_at LIMIT $2",
        )
        .bind(domain::time::to_storage_precision(now))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id.into()).collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, ticket_id = %id))]
    async fn lapse_claim(
        &self,
        id: domain::TicketId,
        now: domain::Timestamp,
        requeue_points: i32,
    ) -> Result<Option<domain::DiagnosisTicket>, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(now);
        let Some(ticket) = Self::fetch_ticket(self.reader(), id).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        Self::lock_case(&mut tx, ticket.case_id, at).await?;
        let lapsed: Option<(uuid::Uuid,)> = query(
            "UPDATE diagnosis_tickets SET claimed_by = NULL, claimed_at = NULL, claim_expires_at = NULL, \
             lapsed_claims = lapsed_claims + 1, priority = priority + $3 \
             WHERE id = $1 AND outcome IS NULL AND claimed_by IS NOT NULL AND claim_expires_at <= $2 \
             RETURNING id",
        )
        .bind(id.as_uuid())
        .bind(at)
        .bind(requeue_points)
        .fetch_optional(&mut tx)
        .await?;
        if lapsed.is_none() {
            return Ok(None);
        }
        Self::append_in_tx(
            &mut tx,
            ticket.case_id,
            domain::NewEvent::new(
                domain::EventKind::DiagnosisReleased,
                domain::Actor::System,
                at,
                serde_json::json!({"ticket_id": id, "expert": ticket.claimed_by, "claimed_at": ticket.claimed_at,
                                   "expired_at": ticket.claim_expires_at, "reason": "claim_timed_out",
                                   "message": "the expert did not report within the claim timeout: the ticket is back in the queue"}),
            ),
        )
        .await?;
        let ticket = Self::fetch_ticket(&mut tx, id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Some(ticket))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn tickets_due_for_fallback(
        &self,
        cutoff: domain::Timestamp,
        now: domain::Timestamp,
        limit: u32,
    ) -> Result<Vec<domain::TicketId>, domain::ports::StoreError> {
        let rows: Vec<(uuid::Uuid,)> = query(
            "SELECT id FROM diagnosis_tickets WHERE outcome IS NULL \
             AND (claimed_by IS NULL OR claim_expires_at <= $2) AND queued_at <= $1 \
             ORDER BY priority DESC, queued_at ASC, id ASC LIMIT $3",
        )
        .bind(domain::time::to_storage_precision(cutoff))
        .bind(domain::time::to_storage_precision(now))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(id,)| id.into()).collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, ticket_id = %id, alert_id = %alert.id))]
    async fn fall_back(
        &self,
        id: domain::TicketId,
        cutoff: domain::Timestamp,
        now: domain::Timestamp,
        alert: &domain::ports::NewAlert,
    ) -> Result<Option<(domain::DiagnosisTicket, domain::Case)>, domain::ports::StoreError> {
        let at = domain::time::to_storage_precision(now);
        let Some(ticket) = Self::fetch_ticket(self.reader(), id).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        let status = Self::lock_case(&mut tx, ticket.case_id, at).await?;
        let updated = query(
            "UPDATE diagnosis_tickets SET outcome = 'timed_out', closed_at = $2 \
             WHERE id = $1 AND outcome IS NULL AND (claimed_by IS NULL OR claim_expires_at <= $2) AND queued_at <= $3",
        )
        .bind(id.as_uuid())
        .bind(at)
        .bind(domain::time::to_storage_precision(cutoff))
        .execute(&mut tx)
        .await?;
        if updated != 1 {
            return Ok(None);
        }
        Self::change_status(
            &mut tx,
            ticket.case_id,
            status,
            domain::CaseStatus::Dispatching,
            None,
            &domain::Actor::System,
            at,
            "diagnosis_wait",
        )
        .await?;
        let inserted = query(
            "INSERT INTO alerts (id, case_id, kind, severity, state, raised_at, predicted_breach, message, updated_at) \
             VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $5) \
             ON CONFLICT (case_id, kind) WHERE state <> 'resolved' DO NOTHING",
        )
        .bind(alert.id.as_uuid())
        .bind(ticket.case_id.as_uuid())
        .bind(alert.kind.as_str())
        .bind(alert.severity.as_str())
        .bind(at)
        .bind(alert.predicted_breach.map(domain::time::to_storage_precision))
        .bind(&alert.message)
        .execute(&mut tx)
        .await?;
        if inserted == 1 {
            Self::append_in_tx(
                &mut tx,
                ticket.case_id,
                domain::NewEvent::new(
                    domain::EventKind::AlertRaised,
                    domain::Actor::System,
                    at,
                    serde_json::json!({"alert_id": alert.id, "kind": alert.kind, "severity": alert.severity, "message": alert.message}),
                ),
            )
            .await?;
        }
        let ticket = Self::fetch_ticket(&mut tx, id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        let case = Self::fetch_case(&mut tx, ticket.case_id)
            .await?
            .ok_or(domain::ports::StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Some((ticket, case)))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %binding.case_id))]
    async fn bind_phone(
        &self,
        binding: &domain::diagnosis::NewPhoneBinding,
    ) -> Result<Option<domain::diagnosis::PhoneBindingRecord>, domain::ports::StoreError> {
        // Two instances may pick the same free number at once; the partial unique
        // index refuses the second, which then picks again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.bind_phone_once(binding).await {
                Err(domain::ports::StoreError::Conflict(_)) if attempt < 5 => continue,
                other => return other,
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME, case_id = %case_id))]
    async fn release_phone(
        &self,
        case_id: domain::CaseId,
        at: domain::Timestamp,
    ) -> Result<(), domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        Self::release_phone_in_tx(&mut tx, case_id, domain::time::to_storage_precision(at)).await?;
        tx.commit().await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn phone_binding(
        &self,
        virtual_number: &str,
    ) -> Result<Option<domain::diagnosis::PhoneBindingRecord>, domain::ports::StoreError> {
        let sql = format!(
            "SELECT {} FROM phone_bindings WHERE virtual_number = $1 AND released_at IS NULL",
            crate::rows::PHONE_BINDING_COLUMNS
        );
        let row: Option<crate::rows::PhoneBindingRow> = query(sql)
            .bind(virtual_number)
            .fetch_optional(self.reader())
            .await?;
        Ok(row.map(Into::into))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn triage_rules(&self) -> Result<Option<(String, i64)>, domain::ports::StoreError> {
        query("SELECT document, version FROM triage_rules ORDER BY version DESC LIMIT 1")
            .fetch_optional(self.reader())
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn save_triage_rules(
        &self,
        text: &str,
        actor: &domain::Actor,
        at: domain::Timestamp,
    ) -> Result<i64, domain::ports::StoreError> {
        let mut tx = self.begin_write().await?;
        let (version,): (i64,) = query(
            "INSERT INTO triage_rules (version, document, saved_by, saved_at) \
             VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM triage_rules), $1, $2, $3) RETURNING version",
        )
        .bind(text)
        .bind(actor.to_string())
        .bind(domain::time::to_storage_precision(at))
        .fetch_one(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(backend = B::NAME))]
    async fn diagnosis_report_rows(
        &self,
        from: domain::Timestamp,
        to: domain::Timestamp,
    ) -> Result<Vec<domain::diagnosis::DiagnosisReportRow>, domain::ports::StoreError> {
        let cases: Vec<(uuid::Uuid, String)> = query(
            "SELECT id, fault_category FROM cases WHERE created_at >= $1 AND created_at < $2 \
             AND status NOT IN ('new', 'diagnosing') ORDER BY created_at, id",
        )
        .bind(domain::time::to_storage_precision(from))
        .bind(domain::time::to_storage_precision(to))
        .fetch_all(self.reader())
        .await?;
        let sql = format!(
            "SELECT {} FROM diagnosis_tickets WHERE outcome IS NOT NULL AND case_id IN \
             (SELECT id FROM cases WHERE created_at >= $1 AND created_at < $2)",
            crate::rows::TICKET_COLUMNS
        );
        let tickets: Vec<crate::rows::TicketRow> = query(sql)
            .bind(domain::time::to_storage_precision(from))
            .bind(domain::time::to_storage_precision(to))
            .fetch_all(self.reader())
            .await?;
        let mut by_case: std::collections::HashMap<domain::CaseId, domain::DiagnosisTicket> =
            std::collections::HashMap::new();
        for row in tickets {
            let ticket: domain::DiagnosisTicket = row.try_into()?;
            by_case.insert(ticket.case_id, ticket);
        }
        cases
            .into_iter()
            .map(|(id, category)| {
                let case_id: domain::CaseId = id.into();
                Ok(domain::diagnosis::DiagnosisReportRow {
                    case_id,
                    category: category
                        .parse()
                        .map_err(|_| crate::error::corrupt("fault category", &category))?,
                    ticket: by_case.remove(&case_id),
                })
            })
            .collect()
    }
}
