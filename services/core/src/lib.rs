//! sitetally-core: everything ingest, the reconciler and the demo share, with no I/O.
//!
//! Layout:
//! - [`event`]    the device-discovery event as decoded from the wire (borrowed, zero-copy);
//! - [`codec`]    schema-registry wire format (Avro) and JSON decoding, schema resolution;
//! - [`count`]    a distinct-device count: exact, or an estimate with its one-sigma error;
//! - [`identity`] canonical MACs/IPs, "is this a device at all", the stable device key;
//! - [`validate`] required fields, name characters, timestamp sanity, rejection reasons;
//! - [`dedup`]    bounded per tenant/site/day memory of devices already written;
//! - [`sketch`]   per-site HyperLogLog sketches with exact small sets in front (the
//!   embedded store's counts);
//! - [`readiness`] the interface of a dependency a `/readyz` probe checks;
//! - [`secret`]   credentials that never print;
//! - [`text`]     the characters a name may hold; safe text for terminals and CSV;
//! - [`pipeline`] decode ▶ validate ▶ identity ▶ dedup ▶ rows, one call per message.

pub mod avro_plan;
pub mod codec;
pub mod count;
pub mod dedup;
pub mod event;
pub mod identity;
pub mod json_fast;
pub mod pipeline;
pub mod readiness;
pub mod secret;
pub mod sketch;
pub mod text;
pub mod validate;

pub use count::{Count, CountMethod};
pub use event::{DeviceCategory, Discovery, Report, Sighting};
pub use pipeline::{Outcome, Pipeline, PipelineConfig};

/// Milliseconds in one UTC day; sightings are bucketed by day since the Unix epoch.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Histogram buckets (seconds) of every latency metric: Prometheus buckets, not
/// summaries, so quantiles aggregate across replicas (`histogram_quantile` over
/// `sum by (le)`). 1 ms to 5 min covers an API request up to a slow reconciliation run.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Day number (days since 1970-01-01 UTC) of an epoch-milliseconds timestamp.
pub fn day_of(epoch_ms: i64) -> u16 {
    epoch_ms.div_euclid(MS_PER_DAY).clamp(0, u16::MAX as i64) as u16
}

/// Stable 64-bit hash of a tenant/site pair, used as the in-memory site key.
pub fn site_hash(tenant: &str, site: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(tenant.as_bytes());
    h.update(&[0xff]);
    h.update(site.as_bytes());
    h.digest()
}
