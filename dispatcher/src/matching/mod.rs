//! Matching: which vehicle gets the offer. Candidates come from the fleet index, are ranked
//! by ETA and provider record, and the best is claimed and offered in one transaction; a
//! decline or silence moves on to the next, widening the search, until someone accepts or
//! the case is escalated to an agent.

mod dispatcher;
mod eta;
mod rank;

pub use dispatcher::{
    DISPATCH_LATENCY, DispatchOutcome, DispatchSettings, Dispatcher, ESCALATIONS, OFFERS,
};
pub use eta::{EtaModel, StraightLineEta};
pub use rank::{ProviderScore, ProviderScores, RankedCandidate, rank};
