//! Ranking candidates: by ETA first; among near-ties (within the tie window of the best),
//! by the provider's record — how often it accepts offers and arrives on time — then by
//! contract priority.

use std::collections::HashMap;

use domain::ports::ProviderRecord;
use domain::{ProviderId, VehicleId};
use parking_lot::RwLock;
use serde::Serialize;

/// Pseudo-count of the prior: a new provider is treated as if it had this many offers at
/// the prior rates, so one early decline does not sink it.
const PRIOR_WEIGHT: f64 = 5.0;
/// Prior acceptance rate.
const PRIOR_ACCEPTANCE: f64 = 0.8;
/// Prior on-time rate.
const PRIOR_ON_TIME: f64 = 0.85;

/// A provider's smoothed record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProviderScore {
    /// Smoothed share of offers accepted.
    pub acceptance_rate: f64,
    /// Smoothed share of arrivals on time.
    pub on_time_rate: f64,
}

impl ProviderScore {
    /// The score for a provider with no history.
    pub const PRIOR: ProviderScore = ProviderScore {
        acceptance_rate: PRIOR_ACCEPTANCE,
        on_time_rate: PRIOR_ON_TIME,
    };

    /// Smooths a raw record towards the prior (Laplace-style).
    ///
    /// ```
    /// use dispatcher::matching::ProviderScore;
    /// use domain::ports::ProviderRecord;
    /// use domain::ProviderId;
    /// let record = ProviderRecord { provider_id: ProviderId::new_v7(), offers: 100, accepted: 50, arrivals: 50, on_time: 50 };
    /// let score = ProviderScore::from_record(&record);
    /// assert!((score.acceptance_rate - 0.514).abs() < 0.001);
    /// ```
    pub fn from_record(record: &ProviderRecord) -> ProviderScore {
        let smoothed = |hits: u64, total: u64, prior: f64| {
            (hits as f64 + prior * PRIOR_WEIGHT) / (total as f64 + PRIOR_WEIGHT)
        };
        ProviderScore {
            acceptance_rate: smoothed(record.accepted, record.offers, PRIOR_ACCEPTANCE),
            on_time_rate: smoothed(record.on_time, record.arrivals, PRIOR_ON_TIME),
        }
    }

    /// One number: the chance the provider accepts and then arrives on time.
    pub fn value(&self) -> f64 {
        self.acceptance_rate * self.on_time_rate
    }
}

/// Every provider's score, refreshed from storage now and then.
#[derive(Debug, Default)]
pub struct ProviderScores {
    scores: RwLock<HashMap<ProviderId, ProviderScore>>,
}

impl ProviderScores {
    /// Replaces the scores with those computed from `records`.
    pub fn refresh(&self, records: &[ProviderRecord]) {
        let scores = records
            .iter()
            .map(|record| (record.provider_id, ProviderScore::from_record(record)))
            .collect();
        *self.scores.write() = scores;
    }

    /// A provider's score (the prior when it has no record).
    pub fn get(&self, provider: ProviderId) -> ProviderScore {
        self.scores
            .read()
            .get(&provider)
            .copied()
            .unwrap_or(ProviderScore::PRIOR)
    }
}

/// A candidate with what the ranking looked at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedCandidate {
    /// The vehicle.
    pub vehicle_id: VehicleId,
    /// Its provider.
    pub provider_id: ProviderId,
    /// Great-circle distance to the customer, metres.
    pub distance_m: f64,
    /// Estimated time of arrival, seconds.
    pub eta_s: u32,
    /// Which model estimated it: `road` or `straight_line`.
    pub eta_model: &'static str,
    /// Metres of road to the customer; `None` on the straight line.
    pub road_distance_m: Option<f64>,
    /// The provider's record.
    pub score: ProviderScore,
    /// Contract priority.
    pub priority: i32,
    /// Within the tie window of the fastest.
    pub near_tie: bool,
}

/// Orders candidates: the near-ties of the fastest first, by record (then priority, then
/// ETA); then everyone else by ETA. Returns the order and whether the record changed the
/// winner.
///
/// ```
/// use dispatcher::matching::{rank, ProviderScore, RankedCandidate};
/// use domain::{ProviderId, VehicleId};
/// let candidate = |eta_s, acceptance_rate| RankedCandidate {
///     vehicle_id: VehicleId::new_v7(), provider_id: ProviderId::new_v7(), distance_m: 0.0, eta_s,
///     eta_model: "straight_line", road_distance_m: None,
///     score: ProviderScore { acceptance_rate, on_time_rate: 0.9 }, priority: 0, near_tie: false,
/// };
/// // 600 s with a poor record against 630 s with a good one: a near-tie, the record wins.
/// let (order, record_decided) = rank(vec![candidate(600, 0.3), candidate(630, 0.95)], 60);
/// assert_eq!(order[0].eta_s, 630);
/// assert!(record_decided);
/// // 600 s against 1200 s: no tie, ETA wins.
/// let (order, record_decided) = rank(vec![candidate(1200, 0.95), candidate(600, 0.3)], 60);
/// assert_eq!(order[0].eta_s, 600);
/// assert!(!record_decided);
/// ```
pub fn rank(
    mut candidates: Vec<RankedCandidate>,
    tie_window_s: u32,
) -> (Vec<RankedCandidate>, bool) {
    candidates.sort_by(|a, b| {
        a.eta_s
            .cmp(&b.eta_s)
            .then(a.distance_m.total_cmp(&b.distance_m))
    });
    let Some(fastest) = candidates.first().map(|c| (c.eta_s, c.vehicle_id)) else {
        return (candidates, false);
    };
    let window = tie_window_s.max(fastest.0 / 10);
    let limit = fastest.0.saturating_add(window);
    for candidate in &mut candidates {
        candidate.near_tie = candidate.eta_s <= limit;
    }
    let split = candidates.iter().take_while(|c| c.near_tie).count();
    candidates[..split].sort_by(|a, b| {
        b.score
            .value()
            .total_cmp(&a.score.value())
            .then(b.priority.cmp(&a.priority))
            .then(a.eta_s.cmp(&b.eta_s))
    });
    let record_decided = candidates[0].vehicle_id != fastest.1;
    (candidates, record_decided)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(eta_s: u32, acceptance_rate: f64, priority: i32) -> RankedCandidate {
        RankedCandidate {
            vehicle_id: VehicleId::new_v7(),
            provider_id: ProviderId::new_v7(),
            distance_m: f64::from(eta_s) * 8.0,
            eta_s,
            eta_model: "straight_line",
            road_distance_m: None,
            score: ProviderScore {
                acceptance_rate,
                on_time_rate: 0.9,
            },
            priority,
            near_tie: false,
        }
    }

    #[test]
    fn candidates_outside_the_tie_window_keep_eta_order_whatever_their_record() {
        let (order, _) = rank(
            vec![
                candidate(2000, 0.99, 9),
                candidate(900, 0.1, 0),
                candidate(1500, 0.99, 9),
            ],
            60,
        );
        let etas: Vec<u32> = order.iter().map(|c| c.eta_s).collect();
        assert_eq!(etas, vec![900, 1500, 2000]);
    }

    #[test]
    fn the_tie_window_grows_with_the_eta() {
        // 10 % of 3000 s is 300 s > 60 s: 3250 s is a near-tie.
        let (order, decided) = rank(vec![candidate(3000, 0.2, 0), candidate(3250, 0.9, 0)], 60);
        assert_eq!(order[0].eta_s, 3250);
        assert!(decided);
        assert!(order.iter().all(|c| c.near_tie));
    }

    #[test]
    fn priority_breaks_equal_records() {
        let (order, _) = rank(vec![candidate(600, 0.8, 0), candidate(610, 0.8, 5)], 60);
        assert_eq!(order[0].priority, 5);
    }

    #[test]
    fn a_new_provider_gets_the_prior_not_zero() {
        let scores = ProviderScores::default();
        assert_eq!(scores.get(ProviderId::new_v7()), ProviderScore::PRIOR);
    }

    #[test]
    fn an_empty_list_ranks_to_nothing() {
        assert_eq!(rank(vec![], 60), (vec![], false));
    }
}
