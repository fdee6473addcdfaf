//! The store's integration tests, one binary (as clickhouse-rs keeps them):
//! - [`contract`]: what every engine promises, written once over the traits and run
//!   against the embedded SQLite store (always) and ClickHouse (`#[ignore]`d: the rig of
//!   `scripts/test.sh` starts it; each test on its own database);
//! - [`embedded`]: what only the embedded store promises (reopening, several handles,
//!   its sketches' error bounds).
//! - [`tls`]: ClickHouse over https, trusting the rig's CA or not.

mod contract;
mod embedded;
mod tls;

use sitetally_core::{DeviceCategory, Sighting};
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use sitetally_store::embedded::EmbeddedStore;

/// A day whose data every engine keeps (a current ClickHouse applies its TTLs to data
/// older than them, even while inserting).
pub fn day() -> u16 {
    sitetally_core::day_of(chrono::Utc::now().timestamp_millis()) - 5
}

/// A sighting of tenant `acme`; keys that are multiples of 10 are agent-managed.
pub fn row(site: &str, day: u16, key: u64, category: DeviceCategory) -> Sighting {
    Sighting {
        tenant: "acme".into(),
        site: site.into(),
        day,
        device_key: key,
        device_label: format!("mac:{key}"),
        category,
        agent_managed: key.is_multiple_of(10),
        sensor: "s1".into(),
        seen_at_ms: day as i64 * 86_400_000,
    }
}

/// Device keys as ingest makes them: well-mixed 64-bit hashes (the sketches rely on it).
pub fn hashed(i: u64) -> u64 {
    // splitmix64's finalizer: a bijection, so distinct inputs stay distinct.
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An embedded store in a fresh temporary directory (kept as long as the guard).
pub fn embedded_store() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (EmbeddedStore::open(dir.path()).unwrap(), dir)
}

/// A ClickHouse store on a database of its own, on the rig's server.
pub fn clickhouse_store(name: &str) -> ClickHouseStore {
    let url = std::env::var("SITETALLY_TEST_CLICKHOUSE_URL").expect(
        "SITETALLY_TEST_CLICKHOUSE_URL is not set: run scripts/test.sh, which starts ClickHouse",
    );
    ClickHouseStore::new(&ClickHouseConfig {
        url,
        database: format!("it_{name}_{}", std::process::id()),
        ..Default::default()
    })
    .expect("TLS settings of a test store")
}
