//! Masked calls: the expert (or, later, an agent or a tow driver) and the customer call each
//! other through a virtual number bound to the case, so neither sees the other's number.
//!
//! [`PhoneBridge`] is the port the server calls. The built-in implementation allocates
//! virtual numbers from a configured pool; its policy is the pure [`NumberPool`], which
//! the server persists row by row ([`PoolNumber`]) and [`InMemoryBridge`] keeps in memory
//! (the embedded default and tests). The telephony provider asks the server, for an
//! incoming call to a virtual number, whom to connect the caller to: that is
//! [`PhoneBridge::lookup`].
//!
//! Pool policy:
//! - a case holds at most one number; binding again keeps the number and replaces the
//!   parties (the same bridge serves expert↔customer, then agent↔customer);
//! - a number is never bound to two live cases;
//! - the next number handed out is the **least recently released** one (never-used numbers
//!   first, in configuration order), so a number just released — which the customer may
//!   still call back — is reused as late as possible. In SQL:
//!   `ORDER BY released_at ASC NULLS FIRST, position ASC`;
//! - the number is released when the case closes; releasing twice is harmless;
//! - an empty pool is refused with [`BridgeError::PoolExhausted`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use domain::{CaseId, Clock, PhoneNumber};
use serde::{Deserialize, Serialize};

/// A virtual number bound to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Binding {
    /// The case.
    pub case_id: CaseId,
    /// The number both parties dial.
    pub virtual_number: PhoneNumber,
    /// When the binding stops routing calls unless bound again.
    pub expires_at: DateTime<Utc>,
}

/// Why the bridge refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// Every number of the pool is bound to a live case (the server answers 503).
    #[error("no virtual number is free: all {pool_size} numbers of the pool are in use")]
    PoolExhausted {
        /// How many numbers the pool has.
        pool_size: usize,
    },
    /// The pool configuration lists a number twice.
    #[error("the number pool lists {number} twice")]
    DuplicateNumber {
        /// The number, masked.
        number: String,
    },
    /// Persisted pool state binds one case to two numbers.
    #[error("the number pool binds case {case_id} to two numbers")]
    CaseBoundTwice {
        /// The case.
        case_id: CaseId,
    },
    /// The two parties are the same number.
    #[error("a call needs two different parties")]
    SameParty,
    /// The telephony provider failed.
    #[error("the telephony provider failed: {0}")]
    Provider(String),
}

/// The masked-call port.
#[async_trait]
pub trait PhoneBridge: Send + Sync {
    /// Binds a virtual number to the case and its two parties. Binding a case that already
    /// has a number keeps the number, replaces the parties and extends the expiry.
    async fn bind(
        &self,
        case_id: CaseId,
        party_a: &PhoneNumber,
        party_b: &PhoneNumber,
    ) -> Result<Binding, BridgeError>;

    /// Releases the case's number (the case closed). Releasing a case without a number is
    /// a no-op.
    async fn release(&self, case_id: CaseId) -> Result<(), BridgeError>;

    /// Whom a call from `caller` to `virtual_number` should reach: the other party of a live
    /// binding, or `None` (unknown number, a stranger calling, or an expired binding).
    async fn lookup(
        &self,
        virtual_number: &PhoneNumber,
        caller: &PhoneNumber,
    ) -> Result<Option<PhoneNumber>, BridgeError>;
}

/// One number of the pool as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PoolNumber {
    /// The virtual number.
    pub number: PhoneNumber,
    /// Its place in the configuration (tie-break among never-released numbers).
    pub position: u32,
    /// The case it is bound to, if any.
    pub bound_to: Option<CaseId>,
    /// When it was last released; `None` if never.
    pub released_at: Option<DateTime<Utc>>,
}

/// The pure number-pool allocator.
///
/// ```
/// use domain::{CaseId, PhoneNumber};
/// use diagnosis_core::{BridgeError, NumberPool};
/// let numbers = ["+8610000000001", "+8610000000002"].map(|n| PhoneNumber::parse(n).unwrap());
/// let mut pool = NumberPool::new(numbers).unwrap();
/// let now = "2026-05-04T02:00:00Z".parse().unwrap();
/// let (first, second, third) = (CaseId::new_v7(), CaseId::new_v7(), CaseId::new_v7());
/// assert_eq!(pool.allocate(first).unwrap().as_str(), "+8610000000001");
/// assert_eq!(pool.allocate(second).unwrap().as_str(), "+8610000000002");
/// assert_eq!(pool.allocate(third), Err(BridgeError::PoolExhausted { pool_size: 2 }));
/// pool.release(first, now);
/// assert_eq!(pool.allocate(third).unwrap().as_str(), "+8610000000001");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPool {
    numbers: Vec<PoolNumber>,
}

impl NumberPool {
    /// A pool of fresh numbers, allocated in the given order. Duplicates are refused.
    pub fn new(numbers: impl IntoIterator<Item = PhoneNumber>) -> Result<Self, BridgeError> {
        let rows = numbers
            .into_iter()
            .enumerate()
            .map(|(position, number)| PoolNumber {
                number,
                position: u32::try_from(position).unwrap_or(u32::MAX),
                bound_to: None,
                released_at: None,
            })
            .collect();
        Self::from_rows(rows)
    }

    /// Restores a persisted pool. Refused when a number appears twice or a case holds two
    /// numbers.
    pub fn from_rows(rows: Vec<PoolNumber>) -> Result<Self, BridgeError> {
        for (index, row) in rows.iter().enumerate() {
            let earlier = &rows[..index];
            if earlier.iter().any(|other| other.number == row.number) {
                return Err(BridgeError::DuplicateNumber {
                    number: row.number.masked(),
                });
            }
            if let Some(case_id) = row.bound_to
                && earlier.iter().any(|other| other.bound_to == Some(case_id))
            {
                return Err(BridgeError::CaseBoundTwice { case_id });
            }
        }
        Ok(Self { numbers: rows })
    }

    /// The state to persist.
    pub fn rows(&self) -> &[PoolNumber] {
        &self.numbers
    }

    /// How many numbers the pool has.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether the pool has no numbers at all.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// How many numbers are free.
    pub fn free_count(&self) -> usize {
        self.numbers
            .iter()
            .filter(|row| row.bound_to.is_none())
            .count()
    }

    /// The number bound to `case_id`.
    pub fn number_for(&self, case_id: CaseId) -> Option<&PhoneNumber> {
        self.numbers
            .iter()
            .find(|row| row.bound_to == Some(case_id))
            .map(|row| &row.number)
    }

    /// The case `number` is bound to.
    pub fn case_for(&self, number: &PhoneNumber) -> Option<CaseId> {
        self.numbers
            .iter()
            .find(|row| &row.number == number)
            .and_then(|row| row.bound_to)
    }

    /// The case's number: the one it already holds, else the least recently released free
    /// number.
    pub fn allocate(&mut self, case_id: CaseId) -> Result<PhoneNumber, BridgeError> {
        if let Some(number) = self.number_for(case_id) {
            return Ok(number.clone());
        }
        let pool_size = self.numbers.len();
        let row = self
            .numbers
            .iter_mut()
            .filter(|row| row.bound_to.is_none())
            // `None` (never released) sorts before any instant.
            .min_by_key(|row| (row.released_at, row.position))
            .ok_or(BridgeError::PoolExhausted { pool_size })?;
        row.bound_to = Some(case_id);
        Ok(row.number.clone())
    }

    /// Frees the case's number at `now`; returns it, or `None` when the case held none
    /// (a second release).
    pub fn release(&mut self, case_id: CaseId, now: DateTime<Utc>) -> Option<PhoneNumber> {
        let row = self
            .numbers
            .iter_mut()
            .find(|row| row.bound_to == Some(case_id))?;
        row.bound_to = None;
        row.released_at = Some(now);
        Some(row.number.clone())
    }
}

#[derive(Debug, Clone)]
struct Parties {
    party_a: PhoneNumber,
    party_b: PhoneNumber,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
struct BridgeState {
    pool: NumberPool,
    parties: HashMap<CaseId, Parties>,
}

/// The built-in [`PhoneBridge`] over a [`NumberPool`] held in memory, for the embedded
/// server and tests. A persistent implementation stores the same state in the database.
pub struct InMemoryBridge {
    state: Mutex<BridgeState>,
    clock: Arc<dyn Clock>,
    binding_ttl: Duration,
}

impl InMemoryBridge {
    /// A bridge over `pool`; bindings route calls for `binding_ttl` after the last bind.
    pub fn new(pool: NumberPool, clock: Arc<dyn Clock>, binding_ttl: Duration) -> Self {
        Self {
            state: Mutex::new(BridgeState {
                pool,
                parties: HashMap::new(),
            }),
            clock,
            binding_ttl,
        }
    }

    /// A copy of the pool state.
    pub fn pool(&self) -> NumberPool {
        self.lock().pool.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BridgeState> {
        // The state stays consistent across a panic (each change is one assignment), so a
        // poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl PhoneBridge for InMemoryBridge {
    async fn bind(
        &self,
        case_id: CaseId,
        party_a: &PhoneNumber,
        party_b: &PhoneNumber,
    ) -> Result<Binding, BridgeError> {
        if party_a == party_b {
            return Err(BridgeError::SameParty);
        }
        let now = self.clock.now();
        let mut state = self.lock();
        let virtual_number = state.pool.allocate(case_id)?;
        let expires_at = now + self.binding_ttl;
        state.parties.insert(
            case_id,
            Parties {
                party_a: party_a.clone(),
                party_b: party_b.clone(),
                expires_at,
            },
        );
        Ok(Binding {
            case_id,
            virtual_number,
            expires_at,
        })
    }

    async fn release(&self, case_id: CaseId) -> Result<(), BridgeError> {
        let now = self.clock.now();
        let mut state = self.lock();
        state.pool.release(case_id, now);
        state.parties.remove(&case_id);
        Ok(())
    }

    async fn lookup(
        &self,
        virtual_number: &PhoneNumber,
        caller: &PhoneNumber,
    ) -> Result<Option<PhoneNumber>, BridgeError> {
        let now = self.clock.now();
        let state = self.lock();
        let Some(case_id) = state.pool.case_for(virtual_number) else {
            return Ok(None);
        };
        let Some(parties) = state.parties.get(&case_id) else {
            return Ok(None);
        };
        if now >= parties.expires_at {
            return Ok(None);
        }
        let callee = if caller == &parties.party_a {
            Some(parties.party_b.clone())
        } else if caller == &parties.party_b {
            Some(parties.party_a.clone())
        } else {
            None
        };
        Ok(callee)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ManualClock;
    use futures::executor::block_on;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn number(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).expect("valid number")
    }

    fn pool_of(count: usize) -> NumberPool {
        NumberPool::new((0..count).map(|index| number(&format!("+861000000{index:04}"))))
            .expect("distinct numbers")
    }

    fn case(n: u128) -> CaseId {
        CaseId(Uuid::from_u128(n))
    }

    fn at_s(seconds: i64) -> DateTime<Utc> {
        let t0: DateTime<Utc> = "2026-05-04T02:00:00Z".parse().expect("valid time");
        t0 + Duration::seconds(seconds)
    }

    #[test]
    fn numbers_are_handed_out_in_configuration_order_one_per_case() {
        let mut pool = pool_of(3);
        assert_eq!(
            pool.allocate(case(1)).expect("free").as_str(),
            "+8610000000000"
        );
        assert_eq!(
            pool.allocate(case(2)).expect("free").as_str(),
            "+8610000000001"
        );
        assert_eq!(
            pool.allocate(case(1)).expect("same case").as_str(),
            "+8610000000000"
        );
        assert_eq!(pool.free_count(), 1);
        assert_eq!(pool.case_for(&number("+8610000000001")), Some(case(2)));
    }

    #[test]
    fn an_exhausted_pool_refuses_with_a_clear_error() {
        let mut pool = pool_of(2);
        pool.allocate(case(1)).expect("free");
        pool.allocate(case(2)).expect("free");
        let error = pool.allocate(case(3)).expect_err("exhausted");
        assert_eq!(error, BridgeError::PoolExhausted { pool_size: 2 });
        assert_eq!(
            error.to_string(),
            "no virtual number is free: all 2 numbers of the pool are in use"
        );
        let mut empty = NumberPool::new([]).expect("an empty pool is valid");
        assert!(empty.is_empty());
        assert_eq!(
            empty.allocate(case(1)),
            Err(BridgeError::PoolExhausted { pool_size: 0 })
        );
    }

    #[test]
    fn the_least_recently_released_number_is_reused_first_and_fresh_numbers_before_that() {
        let mut pool = pool_of(3);
        for n in 1..=3 {
            pool.allocate(case(n)).expect("free");
        }
        pool.release(case(2), at_s(10));
        pool.release(case(1), at_s(20));
        pool.release(case(3), at_s(30));
        assert_eq!(
            pool.allocate(case(4)).expect("free").as_str(),
            "+8610000000001",
            "released at 10"
        );
        assert_eq!(
            pool.allocate(case(5)).expect("free").as_str(),
            "+8610000000000",
            "released at 20"
        );
        pool.release(case(4), at_s(40));
        assert_eq!(
            pool.allocate(case(6)).expect("free").as_str(),
            "+8610000000002",
            "released at 30"
        );

        let mut fresh_first = pool_of(2);
        fresh_first.allocate(case(1)).expect("free");
        fresh_first.release(case(1), at_s(1));
        assert_eq!(
            fresh_first.allocate(case(2)).expect("free").as_str(),
            "+8610000000001"
        );
    }

    #[test]
    fn releasing_twice_is_harmless() {
        let mut pool = pool_of(2);
        pool.allocate(case(1)).expect("free");
        pool.allocate(case(2)).expect("free");
        assert!(pool.release(case(1), at_s(10)).is_some());
        assert!(pool.release(case(1), at_s(20)).is_none());
        assert_eq!(
            pool.rows()[0].released_at,
            Some(at_s(10)),
            "the second release changed nothing"
        );
        assert!(pool.release(case(99), at_s(20)).is_none());
        assert_eq!(
            pool.number_for(case(2)).map(PhoneNumber::as_str),
            Some("+8610000000001")
        );
    }

    #[test]
    fn a_pool_listing_a_number_twice_or_binding_a_case_twice_is_refused() {
        let duplicate = NumberPool::new([number("+8610000000001"), number("+86 1000 000 0001")]);
        assert!(matches!(
            duplicate,
            Err(BridgeError::DuplicateNumber { .. })
        ));
        let mut rows = pool_of(2).rows().to_vec();
        rows[0].bound_to = Some(case(1));
        rows[1].bound_to = Some(case(1));
        assert_eq!(
            NumberPool::from_rows(rows),
            Err(BridgeError::CaseBoundTwice { case_id: case(1) })
        );
    }

    #[test]
    fn a_restored_pool_continues_where_the_persisted_one_stopped() {
        let mut pool = pool_of(3);
        pool.allocate(case(1)).expect("free");
        pool.allocate(case(2)).expect("free");
        pool.release(case(1), at_s(5));
        let mut restored = NumberPool::from_rows(pool.rows().to_vec()).expect("valid rows");
        assert_eq!(restored, pool);
        assert_eq!(restored.allocate(case(3)), pool.allocate(case(3)));
    }

    fn bridge(pool_size: usize, clock: Arc<ManualClock>) -> InMemoryBridge {
        InMemoryBridge::new(pool_of(pool_size), clock, Duration::minutes(30))
    }

    #[test]
    fn the_bridge_connects_each_party_to_the_other_and_nobody_else() {
        let clock = Arc::new(ManualClock::new(at_s(0)));
        let bridge = bridge(1, clock.clone());
        let (expert, driver, stranger) = (
            number("+8613800000001"),
            number("+8613900000002"),
            number("+8613700000003"),
        );
        let binding = block_on(bridge.bind(case(1), &expert, &driver)).expect("free number");
        assert_eq!(binding.expires_at, at_s(1_800));
        let virtual_number = binding.virtual_number;
        assert_eq!(
            block_on(bridge.lookup(&virtual_number, &driver)),
            Ok(Some(expert.clone()))
        );
        assert_eq!(
            block_on(bridge.lookup(&virtual_number, &expert)),
            Ok(Some(driver.clone()))
        );
        assert_eq!(
            block_on(bridge.lookup(&virtual_number, &stranger)),
            Ok(None)
        );
        assert_eq!(
            block_on(bridge.lookup(&driver, &expert)),
            Ok(None),
            "not a virtual number"
        );

        clock.set(at_s(1_800));
        assert_eq!(
            block_on(bridge.lookup(&virtual_number, &driver)),
            Ok(None),
            "expired"
        );
    }

    #[test]
    fn binding_again_keeps_the_number_and_replaces_the_parties() {
        let clock = Arc::new(ManualClock::new(at_s(0)));
        let bridge = bridge(2, clock.clone());
        let (expert, agent, driver) = (
            number("+8613800000001"),
            number("+8613800000009"),
            number("+8613900000002"),
        );
        let first = block_on(bridge.bind(case(1), &expert, &driver)).expect("free");
        clock.set(at_s(600));
        let second = block_on(bridge.bind(case(1), &agent, &driver)).expect("same case");
        assert_eq!(first.virtual_number, second.virtual_number);
        assert_eq!(second.expires_at, at_s(2_400));
        assert_eq!(
            block_on(bridge.lookup(&second.virtual_number, &driver)),
            Ok(Some(agent))
        );
        assert_eq!(
            block_on(bridge.lookup(&second.virtual_number, &expert)),
            Ok(None)
        );
    }

    #[test]
    fn the_bridge_refuses_when_the_pool_is_empty_and_frees_numbers_on_release() {
        let clock = Arc::new(ManualClock::new(at_s(0)));
        let bridge = bridge(1, clock);
        let (a, b) = (number("+8613800000001"), number("+8613900000002"));
        let binding = block_on(bridge.bind(case(1), &a, &b)).expect("free");
        assert_eq!(
            block_on(bridge.bind(case(2), &a, &b)),
            Err(BridgeError::PoolExhausted { pool_size: 1 })
        );
        block_on(bridge.release(case(1))).expect("released");
        block_on(bridge.release(case(1))).expect("releasing twice is harmless");
        assert_eq!(
            block_on(bridge.lookup(&binding.virtual_number, &a)),
            Ok(None)
        );
        assert!(block_on(bridge.bind(case(2), &a, &b)).is_ok());
        assert_eq!(
            block_on(bridge.bind(case(3), &a, &a)),
            Err(BridgeError::SameParty)
        );
    }

    #[derive(Debug, Clone)]
    enum Operation {
        Allocate(u128),
        Release(u128),
    }

    proptest! {
        #[test]
        fn a_number_is_never_bound_to_two_live_cases(
            operations in proptest::collection::vec(
                prop_oneof![(0u128..8).prop_map(Operation::Allocate), (0u128..8).prop_map(Operation::Release)],
                0..60,
            )
        ) {
            let mut pool = pool_of(4);
            let mut live: std::collections::HashMap<u128, PhoneNumber> = Default::default();
            for (step, operation) in operations.into_iter().enumerate() {
                match operation {
                    Operation::Allocate(n) => match pool.allocate(case(n)) {
                        Ok(number) => {
                            if let Some(held) = live.get(&n) {
                                prop_assert_eq!(held, &number, "a case keeps its number");
                            }
                            prop_assert!(
                                live.iter().all(|(other, held)| *other == n || held != &number),
                                "number handed to two live cases"
                            );
                            live.insert(n, number);
                        }
                        Err(BridgeError::PoolExhausted { .. }) => prop_assert_eq!(live.len(), 4),
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    },
                    Operation::Release(n) => {
                        let released = pool.release(case(n), at_s(step as i64));
                        prop_assert_eq!(released, live.remove(&n));
                    }
                }
                prop_assert_eq!(pool.free_count(), 4 - live.len());
            }
        }
    }
}
