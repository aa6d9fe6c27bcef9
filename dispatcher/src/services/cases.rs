//! Cases as agents, customers and experts read them, and what agents add to a case besides
//! dispatch: a note, an update sent to the customer's tracking page.

use std::sync::Arc;

use domain::ports::{CaseFilter, Store, StoreError};
use domain::{Actor, Case, CaseId, Clock, Event, EventKind, NewEvent, UserId};

use crate::services::tracking::Tracking;

/// Why an agent's addition to a case was refused.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// No such case.
    #[error("case not found")]
    NotFound,
    /// The case is closed: nobody follows it any more.
    #[error("the case is {0}; the customer is no longer following it")]
    Closed(domain::CaseStatus),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reading cases (see the module docs).
pub struct Cases {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tracking: Arc<Tracking>,
}

impl Cases {
    /// Case reads over `store`; live predictions come from `tracking`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, tracking: Arc<Tracking>) -> Cases {
        Cases {
            store,
            clock,
            tracking,
        }
    }

    /// A case, with the live predicted arrival when it is being tracked (fresher than the
    /// stored one).
    pub async fn get(&self, id: CaseId) -> Result<Option<Case>, StoreError> {
        let Some(mut case) = self.store.get_case(id).await? else {
            return Ok(None);
        };
        if let Some(predicted) = self.tracking.predicted_arrival(id) {
            case.predicted_arrival = Some(predicted);
        }
        Ok(Some(case))
    }

    /// Whether a phone expert holds the diagnosis ticket of a case (the only cases an
    /// expert may read).
    pub async fn expert_holds(&self, id: CaseId, expert: UserId) -> Result<bool, StoreError> {
        Ok(self
            .store
            .case_ticket(id)
            .await?
            .is_some_and(|ticket| ticket.claimed_by == Some(expert)))
    }

    /// Cases matching `filter`, newest first.
    pub async fn list(&self, filter: &CaseFilter) -> Result<Vec<Case>, StoreError> {
        self.store.list_cases(filter).await
    }

    /// Every event of a case, in order; empty when there is no such case.
    pub async fn timeline(&self, id: CaseId) -> Result<Vec<Event>, StoreError> {
        self.store.timeline(id).await
    }

    /// An agent's note on a case's timeline.
    pub async fn add_note(&self, id: CaseId, actor: Actor, text: &str) -> Result<Event, AddError> {
        let case = self.store.get_case(id).await?.ok_or(AddError::NotFound)?;
        let event = self
            .store
            .append_event(
                case.id,
                &NewEvent::new(
                    EventKind::NoteAdded,
                    actor,
                    self.clock.now(),
                    serde_json::json!({ "text": text }),
                ),
            )
            .await?;
        tracing::info!(case_id = %case.id, "note added");
        Ok(event)
    }

    /// An update for the customer, shown on their tracking page, while the case is open.
    pub async fn notify_customer(
        &self,
        id: CaseId,
        actor: Actor,
        message: &str,
    ) -> Result<Event, AddError> {
        let case = self.store.get_case(id).await?.ok_or(AddError::NotFound)?;
        if case.status.is_terminal() {
            return Err(AddError::Closed(case.status));
        }
        let event = self
            .store
            .append_event(
                case.id,
                &NewEvent::new(
                    EventKind::CustomerNotified,
                    actor,
                    self.clock.now(),
                    serde_json::json!({ "message": message, "channel": "tracking_page" }),
                ),
            )
            .await?;
        tracing::info!(case_id = %case.id, "customer update sent");
        Ok(event)
    }
}
