//! Seeded randomness: every random choice of a run comes from a generator derived from the
//! run's seed and a label, so a run is reproduced by its seed and independent parts (each
//! provider, the request stream) do not disturb each other's sequences.

use rand::{RngExt, SeedableRng};

/// The generator used everywhere: PCG, whose output is fixed for a given seed across
/// releases (unlike `StdRng`).
pub type SimRng = rand_pcg::Pcg64;

/// A generator for the part of the run named `label` (e.g. `"provider-3"`).
pub fn stream(seed: u64, label: &str) -> SimRng {
    // FNV-1a over the label, then mixed with the seed by SplitMix64's finaliser.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in label.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    SimRng::seed_from_u64(splitmix64(seed ^ hash))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A standard normal sample (Box–Muller).
pub fn normal(rng: &mut SimRng) -> f64 {
    // 1 - u keeps the logarithm's argument in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An exponential sample with the given mean: the gap between Poisson arrivals.
pub fn exponential(rng: &mut SimRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// A log-normal sample with the given median, spread so that about 95 % of samples fall
/// within `median / spread ..= median * spread`, clamped to `min..=max`. Human answer
/// times look like this: most quick, a long tail.
pub fn log_normal_clamped(rng: &mut SimRng, median: f64, spread: f64, min: f64, max: f64) -> f64 {
    let sigma = spread.max(1.0).ln() / 1.96;
    (median * (sigma * normal(rng)).exp()).clamp(min, max)
}

/// A random UUID (version 4) drawn from `rng`, so that idempotency keys repeat with the seed.
pub fn uuid_v4(rng: &mut SimRng) -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// Picks an index with probability proportional to `weights`.
pub fn weighted_index(rng: &mut SimRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut point = rng.random::<f64>() * total;
    for (index, weight) in weights.iter().enumerate() {
        if point < *weight {
            return index;
        }
        point -= weight;
    }
    weights.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_label_give_the_same_sequence() {
        let mut a = stream(7, "provider-1");
        let mut b = stream(7, "provider-1");
        let draws_a: Vec<u64> = (0..5).map(|_| a.random()).collect();
        let draws_b: Vec<u64> = (0..5).map(|_| b.random()).collect();
        assert_eq!(draws_a, draws_b);
    }

    #[test]
    fn different_labels_give_different_sequences() {
        let mut a = stream(7, "provider-1");
        let mut b = stream(7, "provider-2");
        assert_ne!(a.random::<u64>(), b.random::<u64>());
    }

    #[test]
    fn exponential_gaps_average_to_their_mean() {
        let mut rng = stream(1, "gaps");
        let samples = 20_000;
        let mean = (0..samples)
            .map(|_| exponential(&mut rng, 0.02))
            .sum::<f64>()
            / samples as f64;
        assert!((mean - 0.02).abs() < 0.001, "mean {mean}");
    }

    #[test]
    fn log_normal_samples_centre_on_the_median_and_respect_the_bounds() {
        let mut rng = stream(2, "delays");
        let mut samples: Vec<f64> = (0..10_001)
            .map(|_| log_normal_clamped(&mut rng, 4.0, 3.0, 1.0, 20.0))
            .collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        assert!((median - 4.0).abs() < 0.3, "median {median}");
        assert!(samples.first().copied().unwrap() >= 1.0);
        assert!(samples.last().copied().unwrap() <= 20.0);
    }

    #[test]
    fn weighted_choices_follow_their_weights() {
        let mut rng = stream(3, "weights");
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[weighted_index(&mut rng, &[1.0, 2.0, 7.0])] += 1;
        }
        assert!((2_700..3_300).contains(&counts[0]), "{counts:?}");
        assert!((5_400..6_600).contains(&counts[1]), "{counts:?}");
        assert!((20_300..21_700).contains(&counts[2]), "{counts:?}");
    }
}
