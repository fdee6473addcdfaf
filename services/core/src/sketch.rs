//! Per-site distinct-device sketches: an exact sorted set for small sites, HyperLogLog
//! (`cardinality-estimator`, 2^14 registers of 6 bits = 12 KiB, σ ≈ 0.81%) above it.
//!
//! Most sites in this domain have under a few thousand devices, and decisions near a tier
//! boundary must be exact, so the exact set goes as far as the HLL's own memory allows:
//! [`EXACT_LIMIT`] keys × 8 bytes = 12 KiB, the same as the dense HLL. A sketch therefore
//! never holds more than ~12 KiB (DESIGN §4 budget: 16 KiB).
//!
//! Library choice: `benches/pipeline.rs` measures `cardinality-estimator` against
//! `hyperloglogplus` (the design card's crate) on the same keys; see load-tests/RESULTS.md.

use crate::count::Count;
use cardinality_estimator::CardinalityEstimator;
use serde::{Deserialize, Serialize};

/// Largest exactly-counted cardinality.
pub const EXACT_LIMIT: usize = 1536;
/// HLL precision (registers = 2^P).
pub const HLL_PRECISION: usize = 14;

type Hll = CardinalityEstimator<u64, wyhash::WyHash, HLL_PRECISION, 6>;

/// Relative standard error of the HLL phase: 1.04 / sqrt(2^P).
pub fn hll_relative_sigma() -> f64 {
    1.04 / ((1u64 << HLL_PRECISION) as f64).sqrt()
}

/// Distinct count of device keys.
#[derive(Clone, Serialize, Deserialize)]
pub enum SiteSketch {
    /// Sorted distinct keys.
    Exact(Vec<u64>),
    Hll(Box<Hll>),
}

impl Default for SiteSketch {
    fn default() -> Self {
        SiteSketch::Exact(Vec::new())
    }
}

impl std::fmt::Debug for SiteSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.estimate();
        f.debug_struct("SiteSketch")
            .field("count", &e.value)
            .field("exact", &e.is_exact())
            .finish()
    }
}

impl SiteSketch {
    /// Adds a device key (an already well-mixed 64-bit hash).
    pub fn insert(&mut self, key: u64) {
        match self {
            SiteSketch::Exact(keys) => {
                if let Err(pos) = keys.binary_search(&key) {
                    if keys.len() < EXACT_LIMIT {
                        keys.insert(pos, key);
                    } else {
                        let mut hll = Box::new(Hll::new());
                        for &k in keys.iter() {
                            hll.insert_hash(k);
                        }
                        hll.insert_hash(key);
                        *self = SiteSketch::Hll(hll);
                    }
                }
            }
            SiteSketch::Hll(h) => h.insert_hash(key),
        }
    }

    pub fn estimate(&self) -> Count {
        match self {
            SiteSketch::Exact(keys) => Count::exact(keys.len() as u64),
            SiteSketch::Hll(h) => {
                let count = h.estimate() as u64;
                Count::estimated(count, count as f64 * hll_relative_sigma())
            }
        }
    }

    /// Union (idempotent: merging a sketch into itself changes nothing).
    pub fn merge(&mut self, other: &SiteSketch) {
        match other {
            SiteSketch::Exact(keys) => keys.iter().for_each(|&k| self.insert(k)),
            SiteSketch::Hll(oh) => {
                let mut hll = match std::mem::take(self) {
                    SiteSketch::Hll(h) => h,
                    SiteSketch::Exact(keys) => {
                        let mut h = Box::new(Hll::new());
                        keys.iter().for_each(|&k| h.insert_hash(k));
                        h
                    }
                };
                hll.merge(oh);
                *self = SiteSketch::Hll(hll);
            }
        }
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        match self {
            SiteSketch::Exact(keys) => keys.capacity() * 8,
            SiteSketch::Hll(h) => h.size_of(),
        }
    }

    /// Compact binary form for the embedded store.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("sketch serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())
    }

    #[test]
    fn exact_up_to_the_limit_and_idempotent() {
        let mut s = SiteSketch::default();
        for round in 0..3 {
            for i in 0..EXACT_LIMIT as u64 {
                s.insert(key(i));
            }
            assert_eq!(
                s.estimate(),
                Count::exact(EXACT_LIMIT as u64),
                "round {round}"
            );
        }
        assert!(s.memory_bytes() <= 16 * 1024);
    }

    #[test]
    fn large_sites_within_error_and_memory_budget() {
        for n in [5_000u64, 20_000, 100_000] {
            let mut s = SiteSketch::default();
            for i in 0..n {
                s.insert(key(i));
                s.insert(key(i)); // replays do not change the count
            }
            let e = s.estimate();
            let err = (e.value as f64 - n as f64).abs() / n as f64;
            assert!(!e.is_exact());
            assert!(
                err < 4.0 * hll_relative_sigma(),
                "n={n} est={} err={err}",
                e.value
            );
            assert!(s.memory_bytes() <= 16 * 1024, "{}", s.memory_bytes());
        }
    }

    #[test]
    fn merge_is_a_union() {
        let (mut a, mut b) = (SiteSketch::default(), SiteSketch::default());
        (0..1000).for_each(|i| a.insert(key(i)));
        (500..1500).for_each(|i| b.insert(key(i)));
        a.merge(&b);
        assert_eq!(a.estimate().value, 1500);
        let mut big = SiteSketch::default();
        (0..10_000).for_each(|i| big.insert(key(i)));
        let before = big.estimate().value;
        big.merge(&a);
        assert_eq!(big.estimate().value, before, "subset merge changes nothing");
        let round = SiteSketch::from_bytes(&big.to_bytes()).unwrap();
        assert_eq!(round.estimate(), big.estimate());
    }
}
