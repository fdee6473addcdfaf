//! Bounded memory of which (site, day, device) triples ingest has already handed to
//! storage, so storage receives each about once.
//!
//! Correctness never depends on this cache: storage deduplicates too and sketches are
//! idempotent. When the cap is reached new triples are written through (not remembered),
//! so a full cache costs extra rows, never a missing device. The caller must [`clear`]
//! the cache whenever rows it reported as new are discarded unwritten (a failed batch
//! that is abandoned, a rebalance), or a redelivered device would be skipped.
//!
//! [`clear`]: Dedup::clear

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Result of offering a triple to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First time: write it, and it is now remembered.
    New,
    /// Already written: skip.
    Duplicate,
    /// Not remembered (cache full or day already evicted): write it anyway.
    WriteThrough,
}

/// Device keys are already xxh3 hashes: use them as their own hash. (An 8-byte key with
/// no hashing keeps the per-site sets 3× denser than a hashed (site, day, device) tuple,
/// which is what the hot path's cache misses cost; see load-tests/RESULTS.md.)
#[derive(Default)]
pub struct KeyIsHash(u64);

impl Hasher for KeyIsHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; keep a correct fallback anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type DeviceSet = HashSet<u64, BuildHasherDefault<KeyIsHash>>;

pub struct Dedup {
    /// (site, day) → device keys handed to storage. Few sites, many devices each.
    seen: HashMap<(u64, u16), DeviceSet, ahash::RandomState>,
    entries: usize,
    cap: usize,
    /// Days older than `newest_day - keep_days` are evicted.
    keep_days: u16,
    newest_day: u16,
    oldest_kept_day: u16,
}

impl Dedup {
    /// `cap` bounds the number of remembered triples (≈ 13 bytes each with table overhead,
    /// measured: load-tests/RESULTS.md) and so the number of (site, day) sets.
    pub fn new(cap: usize, keep_days: u16) -> Self {
        Self {
            seen: HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4)),
            entries: 0,
            cap,
            keep_days,
            newest_day: 0,
            oldest_kept_day: 0,
        }
    }

    pub fn offer(&mut self, site: u64, day: u16, device: u64) -> Seen {
        if day > self.newest_day {
            self.advance_to(day);
        }
        if day < self.oldest_kept_day {
            return Seen::WriteThrough;
        }
        if self.entries >= self.cap {
            // Full: look up only. An entry per new site here would let a stream of
            // distinct sites grow the map without bound while nothing is remembered.
            return match self.seen.get(&(site, day)) {
                Some(set) if set.contains(&device) => Seen::Duplicate,
                _ => Seen::WriteThrough,
            };
        }
        let set = self.seen.entry((site, day)).or_default();
        if !set.insert(device) {
            return Seen::Duplicate;
        }
        self.entries += 1;
        Seen::New
    }

    fn advance_to(&mut self, day: u16) {
        self.newest_day = day;
        let oldest = day.saturating_sub(self.keep_days);
        if oldest > self.oldest_kept_day {
            self.oldest_kept_day = oldest;
            self.seen.retain(|&(_, d), _| d >= oldest);
            self.entries = self.seen.values().map(HashSet::len).sum();
        }
    }

    /// Forgets everything (after discarding unwritten rows).
    pub fn clear(&mut self) {
        self.seen.clear();
        self.entries = 0;
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The (site, day) sets held; never more than the cap.
    pub fn site_days(&self) -> usize {
        self.seen.len()
    }

    /// Approximate heap bytes held (for the memory gauge): the device sets and the map of
    /// (site, day) to set, each one control byte plus its slot per bucket (hashbrown).
    pub fn memory_bytes(&self) -> usize {
        let sets: usize = self
            .seen
            .values()
            .map(|s| s.capacity() * (std::mem::size_of::<u64>() + 1))
            .sum();
        let slot = std::mem::size_of::<((u64, u16), DeviceSet)>() + 1;
        sets + self.seen.capacity() * slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16: a site with 10 million devices in one day stays within the cap; every
    /// device past it is still written (through), none is dropped.
    #[test]
    fn ten_million_devices_at_one_site_stay_within_the_cap() {
        let cap = 100_000;
        let mut d = Dedup::new(cap, 1);
        let mut through = 0usize;
        for device in 0..10_000_000u64 {
            match d.offer(7, 100, device.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
                Seen::New => {}
                Seen::WriteThrough => through += 1,
                Seen::Duplicate => panic!("a new device {device} reported as a duplicate"),
            }
        }
        assert_eq!(d.len(), cap);
        assert_eq!(through, 10_000_000 - cap);
        // hashbrown at its lowest load (just grown): ≤ 2 buckets of 9 bytes per entry.
        assert!(
            d.memory_bytes() <= cap * 2 * 9 + 1024,
            "{} bytes",
            d.memory_bytes()
        );
    }

    /// Issue 16: a million distinct sites once the cache is full add no (site, day) sets:
    /// memory stays bounded by the cap, not by the number of sites.
    #[test]
    fn a_million_sites_past_the_cap_add_no_memory() {
        let cap = 10_000;
        let mut d = Dedup::new(cap, 1);
        for site in 0..1_000_000u64 {
            let seen = d.offer(site, 100, 1);
            assert_eq!(
                seen == Seen::New,
                site < cap as u64,
                "site {site}: {seen:?}"
            );
        }
        assert_eq!(d.len(), cap);
        assert_eq!(d.site_days(), cap);
        let bytes = d.memory_bytes();
        for site in 1_000_000..1_100_000u64 {
            assert_eq!(d.offer(site, 100, 1), Seen::WriteThrough);
        }
        assert_eq!(d.site_days(), cap);
        assert_eq!(d.memory_bytes(), bytes);
        // A remembered device is still a duplicate when the cache is full.
        assert_eq!(d.offer(3, 100, 1), Seen::Duplicate);
    }

    #[test]
    fn remembers_per_site_and_day() {
        let mut d = Dedup::new(100, 2);
        assert_eq!(d.offer(1, 10, 7), Seen::New);
        assert_eq!(d.offer(1, 10, 7), Seen::Duplicate);
        assert_eq!(d.offer(2, 10, 7), Seen::New);
        assert_eq!(d.offer(1, 11, 7), Seen::New);
    }

    #[test]
    fn full_cache_writes_through_and_never_drops() {
        let mut d = Dedup::new(2, 2);
        assert_eq!(d.offer(1, 10, 1), Seen::New);
        assert_eq!(d.offer(1, 10, 2), Seen::New);
        assert_eq!(d.offer(1, 10, 3), Seen::WriteThrough);
        assert_eq!(d.offer(1, 10, 3), Seen::WriteThrough);
        assert_eq!(d.offer(1, 10, 1), Seen::Duplicate);
        assert_eq!(
            d.offer(2, 10, 1),
            Seen::WriteThrough,
            "the cap is global across sites"
        );
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn old_days_are_evicted_and_written_through() {
        let mut d = Dedup::new(100, 1);
        d.offer(1, 10, 1);
        d.offer(1, 12, 1);
        assert_eq!(
            d.len(),
            1,
            "day 10 evicted once day 12 arrives with keep_days=1"
        );
        assert_eq!(d.offer(1, 10, 1), Seen::WriteThrough);
        assert_eq!(d.offer(1, 11, 5), Seen::New);
    }

    #[test]
    fn clear_forgets() {
        let mut d = Dedup::new(100, 1);
        d.offer(1, 10, 1);
        d.clear();
        assert_eq!(d.offer(1, 10, 1), Seen::New);
    }
}
