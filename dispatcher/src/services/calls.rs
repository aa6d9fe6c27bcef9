//! Masked calls: an agent or a phone expert is connected with the customer or the truck's
//! driver through a virtual number, so no party sees another's real number.
//!
//! [`Calls`] is the use case (who may call whom on which case); [`PoolPhoneBridge`] the
//! built-in [`PhoneBridge`], virtual numbers from the configured pool.

use std::sync::Arc;

use async_trait::async_trait;
use diagnosis_core::{Binding, BridgeError, PhoneBridge};
use domain::diagnosis::NewPhoneBinding;
use domain::ports::{Store, StoreError};
use domain::{Case, CaseId, Clock, PhoneNumber, TicketId, User};

/// How long a masked-call binding routes calls after the last bind.
const BINDING_TTL_H: i64 = 4;

/// Whom an agent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callee {
    /// The customer.
    Customer,
    /// The driver of the assigned truck.
    Driver,
}

/// Why a call could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No such case (or ticket).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The call cannot be made in the case's state (closed, no truck, no driver phone,
    /// not the expert's ticket).
    #[error("{0}")]
    Conflict(String),
    /// The bridge refused or failed.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored number is not a phone number.
    #[error("stored driver phone: {0}")]
    StoredNumber(String),
}

/// Masked calls for agents and experts (see the module docs).
pub struct Calls {
    store: Arc<dyn Store>,
    bridge: Arc<dyn PhoneBridge>,
}

impl Calls {
    /// Calls over `bridge`.
    pub fn new(store: Arc<dyn Store>, bridge: Arc<dyn PhoneBridge>) -> Calls {
        Calls { store, bridge }
    }

    /// An agent calls the customer or the driver of a case that is still open.
    pub async fn agent_call(
        &self,
        case_id: CaseId,
        callee: Callee,
        agent_phone: &PhoneNumber,
    ) -> Result<(Case, Binding), CallError> {
        let case = self
            .store
            .get_case(case_id)
            .await?
            .ok_or(CallError::NotFound("case"))?;
        if case.status.is_terminal() {
            return Err(CallError::Conflict(format!(
                "the case is {}; its masked number is released",
                case.status
            )));
        }
        let other = match callee {
            Callee::Customer => case.customer.phone.clone(),
            Callee::Driver => {
                let job = self.store.active_job(case.id).await?.ok_or_else(|| {
                    CallError::Conflict("no truck is assigned to the case".to_owned())
                })?;
                let phone = self
                    .store
                    .get_vehicle(job.vehicle_id)
                    .await?
                    .and_then(|vehicle| vehicle.driver_phone)
                    .ok_or_else(|| {
                        CallError::Conflict(
                            "the provider registered no driver phone for the truck".to_owned(),
                        )
                    })?;
                PhoneNumber::parse(&phone)
                    .map_err(|error| CallError::StoredNumber(error.message))?
            }
        };
        let binding = self.bridge.bind(case.id, agent_phone, &other).await?;
        tracing::info!(case_id = %case.id, callee = ?callee, "masked call bound for an agent");
        Ok((case, binding))
    }

    /// Whom a caller on a virtual number reaches: the other party of its live binding, if
    /// the caller is one of the two.
    pub async fn lookup(
        &self,
        virtual_number: &PhoneNumber,
        caller: &PhoneNumber,
    ) -> Result<Option<PhoneNumber>, BridgeError> {
        self.bridge.lookup(virtual_number, caller).await
    }

    /// A phone expert calls the customer of a ticket they hold.
    pub async fn expert_call(
        &self,
        ticket_id: TicketId,
        expert: &User,
        expert_phone: &PhoneNumber,
    ) -> Result<(Case, Binding), CallError> {
        let ticket = self
            .store
            .get_ticket(ticket_id)
            .await?
            .ok_or(CallError::NotFound("ticket"))?;
        if ticket.outcome.is_some() || ticket.claimed_by != Some(expert.id) {
            return Err(CallError::Conflict(
                "you do not hold an open claim on this ticket".to_owned(),
            ));
        }
        let case = self
            .store
            .get_case(ticket.case_id)
            .await?
            .ok_or(CallError::NotFound("case"))?;
        let binding = self
            .bridge
            .bind(case.id, expert_phone, &case.customer.phone)
            .await?;
        tracing::info!(case_id = %case.id, ticket_id = %ticket.id, "masked call bound");
        Ok((case, binding))
    }
}

/// The built-in [`PhoneBridge`]: virtual numbers from the configured pool
/// (`RESCUE_PHONE_POOL`), bound in the database so that every instance sees the same
/// bindings and a number is never bound to two live cases (a partial unique index).
pub struct PoolPhoneBridge {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    pool: Vec<PhoneNumber>,
}

impl PoolPhoneBridge {
    /// A bridge over `pool`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, pool: Vec<PhoneNumber>) -> Self {
        Self { store, clock, pool }
    }

    /// How many numbers the pool has.
    pub fn pool_size(&self) -> usize {
        self.pool.len()
    }
}

fn provider_error(error: StoreError) -> BridgeError {
    BridgeError::Provider(error.to_string())
}

#[async_trait]
impl PhoneBridge for PoolPhoneBridge {
    async fn bind(
        &self,
        case_id: CaseId,
        party_a: &PhoneNumber,
        party_b: &PhoneNumber,
    ) -> Result<Binding, BridgeError> {
        if party_a == party_b {
            return Err(BridgeError::SameParty);
        }
        let binding = NewPhoneBinding {
            case_id,
            pool: self
                .pool
                .iter()
                .map(|number| number.as_str().to_owned())
                .collect(),
            party_a: party_a.as_str().to_owned(),
            party_b: party_b.as_str().to_owned(),
            at: self.clock.now(),
        };
        let record = self
            .store
            .bind_phone(&binding)
            .await
            .map_err(provider_error)?
            .ok_or(BridgeError::PoolExhausted {
                pool_size: self.pool.len(),
            })?;
        let virtual_number = PhoneNumber::parse(&record.virtual_number)
            .map_err(|error| BridgeError::Provider(error.message))?;
        Ok(Binding {
            case_id,
            virtual_number,
            expires_at: record.bound_at + chrono::Duration::hours(BINDING_TTL_H),
        })
    }

    async fn release(&self, case_id: CaseId) -> Result<(), BridgeError> {
        self.store
            .release_phone(case_id, self.clock.now())
            .await
            .map_err(provider_error)
    }

    async fn lookup(
        &self,
        virtual_number: &PhoneNumber,
        caller: &PhoneNumber,
    ) -> Result<Option<PhoneNumber>, BridgeError> {
        let Some(record) = self
            .store
            .phone_binding(virtual_number.as_str())
            .await
            .map_err(provider_error)?
        else {
            return Ok(None);
        };
        if self.clock.now() >= record.bound_at + chrono::Duration::hours(BINDING_TTL_H) {
            return Ok(None);
        }
        let other = if caller.as_str() == record.party_a {
            &record.party_b
        } else if caller.as_str() == record.party_b {
            &record.party_a
        } else {
            return Ok(None);
        };
        Ok(PhoneNumber::parse(other).ok())
    }
}
