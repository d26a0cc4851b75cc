//! Seeded randomness: a portable, seedable generator (ChaCha8, the same
//! stream on every platform and release), unbiased bounded draws
//! (rejection sampling) and Fisher–Yates shuffles. One independent stream
//! per purpose, so adding a draw in one place never changes another.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a stream is used for (its stream number).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    ComputerName = 1,
    UserName = 2,
    Software = 3,
    Capabilities = 4,
    VisualEffects = 5,
    DesktopIcons = 6,
}

pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64, purpose: Purpose) -> Rng {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(purpose as u64);
        Rng(r)
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias: draws below
    /// `2^64 mod n` are rejected.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        let threshold = n.wrapping_neg() % n;
        loop {
            let x = self.0.next_u64();
            if x >= threshold {
                return x % n;
            }
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn coin(&mut self) -> bool {
        self.below(2) == 1
    }

    /// Fisher–Yates (Durstenfeld): every permutation equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// A uniformly random subset of `pool` whose size is uniform in
    /// `[min(lo, n), min(hi, n)]`, in the pool's order.
    pub fn subset<T: Clone>(&mut self, pool: &[T], lo: u32, hi: u32) -> Vec<T> {
        let n = pool.len() as u64;
        let (lo, hi) = (u64::from(lo).min(n), u64::from(hi).min(n));
        let k = if lo >= hi { lo } else { self.between(lo, hi) };
        let mut idx: Vec<usize> = (0..pool.len()).collect();
        self.shuffle(&mut idx);
        let mut picked: Vec<usize> = idx.into_iter().take(k as usize).collect();
        picked.sort_unstable();
        picked.into_iter().map(|i| pool[i].clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Pearson's chi-square statistic of observed counts against a uniform
    /// expectation over `cells` outcomes.
    fn chi_square(counts: &BTreeMap<Vec<usize>, u64>, cells: usize, draws: u64) -> f64 {
        assert_eq!(counts.len(), cells, "every outcome occurs");
        let expected = draws as f64 / cells as f64;
        counts
            .values()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a: Vec<u64> = (0..8)
            .map(|_| Rng::new(7, Purpose::Software).below(1000))
            .collect();
        let mut r1 = Rng::new(7, Purpose::Software);
        let mut r2 = Rng::new(7, Purpose::Software);
        let mut r3 = Rng::new(8, Purpose::Software);
        let mut r4 = Rng::new(7, Purpose::Capabilities);
        let s1: Vec<u64> = (0..32).map(|_| r1.below(1 << 40)).collect();
        let s2: Vec<u64> = (0..32).map(|_| r2.below(1 << 40)).collect();
        let s3: Vec<u64> = (0..32).map(|_| r3.below(1 << 40)).collect();
        let s4: Vec<u64> = (0..32).map(|_| r4.below(1 << 40)).collect();
        assert_eq!(s1, s2);
        assert_ne!(s1, s3);
        assert_ne!(s1, s4);
        assert!(a.iter().all(|x| *x < 1000));
    }

    /// Bug (g): the original shuffled with `sort(() => Math.random() - 0.5)`,
    /// which is biased. Fisher–Yates over 4 items: all 24 orders equally
    /// often (chi-square, 23 degrees of freedom, p = 0.001 critical value 49.73).
    #[test]
    fn shuffle_is_uniform_over_permutations() {
        let mut rng = Rng::new(20260101, Purpose::Software);
        let draws = 240_000u64;
        let mut counts = BTreeMap::new();
        for _ in 0..draws {
            let mut v = vec![0usize, 1, 2, 3];
            rng.shuffle(&mut v);
            *counts.entry(v).or_insert(0u64) += 1;
        }
        let chi = chi_square(&counts, 24, draws);
        assert!(
            chi < 49.73,
            "chi-square {chi} over 24 permutations: {counts:?}"
        );
    }

    /// Subsets of a fixed size are uniform: C(6,3) = 20 subsets, 19 degrees
    /// of freedom (critical value 43.82 at p = 0.001); the size is uniform
    /// in its range (3 sizes, critical value 13.82).
    #[test]
    fn subsets_are_uniform() {
        let pool: Vec<usize> = (0..6).collect();
        let mut rng = Rng::new(42, Purpose::Capabilities);
        let draws = 200_000u64;
        let mut counts = BTreeMap::new();
        for _ in 0..draws {
            *counts.entry(rng.subset(&pool, 3, 3)).or_insert(0u64) += 1;
        }
        let chi = chi_square(&counts, 20, draws);
        assert!(chi < 43.82, "chi-square {chi}: {counts:?}");
        let mut sizes = BTreeMap::new();
        for _ in 0..draws {
            *sizes
                .entry(vec![rng.subset(&pool, 1, 3).len()])
                .or_insert(0u64) += 1;
        }
        let chi = chi_square(&sizes, 3, draws);
        assert!(chi < 13.82, "sizes chi-square {chi}: {sizes:?}");
    }

    #[test]
    fn bounded_draws_cover_the_range_evenly() {
        let mut rng = Rng::new(1, Purpose::UserName);
        let draws = 100_000u64;
        let mut counts = BTreeMap::new();
        for _ in 0..draws {
            *counts.entry(vec![rng.below(7) as usize]).or_insert(0u64) += 1;
        }
        // 6 degrees of freedom, p = 0.001: 22.46.
        assert!(chi_square(&counts, 7, draws) < 22.46, "{counts:?}");
    }

    #[test]
    fn subset_sizes_clamp_to_the_pool() {
        let mut rng = Rng::new(3, Purpose::Software);
        assert_eq!(rng.subset(&[1, 2, 3], 5, 15).len(), 3);
        assert!(rng.subset::<u8>(&[], 5, 15).is_empty());
        assert_eq!(rng.subset(&[1, 2, 3, 4], 0, 0).len(), 0);
    }
}
