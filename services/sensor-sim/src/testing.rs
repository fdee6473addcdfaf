//! Test fixtures shared by the unit tests: a fixed `now` and a small multi-day world.

use crate::config::{SimConfig, SizeProfile};
use crate::stream::EventStream;
use crate::world::World;
use std::sync::Arc;

/// 2026-11-23T09:00:00Z
pub(crate) const NOW: i64 = 1_795_424_400_000;

/// 24 sites of 3 to 600 devices over 3 days, 4 of them growing.
pub(crate) fn config(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 24);
    c.sizes = SizeProfile::Realistic { min: 3, max: 600 };
    c.days = 3;
    c.grow_sites = 4;
    c
}

pub(crate) fn stream(c: SimConfig) -> EventStream {
    EventStream::new(Arc::new(World::new(c).unwrap()), NOW)
}
