//! Matching, the pure part: how long a vehicle would take to reach a customer
//! ([`EtaModel`]) and how candidates are ranked ([`rank`]: ETA first, near-ties broken by
//! the provider's record). The offer cascade that claims and offers the best candidate is
//! a service: [`crate::services::cascade`].

mod eta;
mod rank;

pub use eta::{Eta, EtaModel, EtaOrigin, RoadNetworkEta, StraightLineEta};
pub use rank::{ProviderScore, ProviderScores, RankedCandidate, rank};
