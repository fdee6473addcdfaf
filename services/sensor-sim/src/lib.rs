//! sitetally-sensor-sim: realistic, deterministic sensor traffic for sitetally's demo,
//! acceptance tests and load tests, with the exact ground truth to check counts against.
//!
//! Layout:
//! - [`world`]  the simulated world from a seed: tenants, OT sites of every tier size and
//!   Enterprise IoT fleets, sensors, zones, devices (multi-NIC, IP-only), growing sites;
//! - [`config`] the simulator's settings ([`SimConfig`], [`SizeProfile`]) and their checks;
//! - [`licence`] OT site tiers and the licence a site of a given size needs;
//! - `catalog` the vendors, models, tenant, site and zone names the world is drawn from;
//! - [`stream`] the message stream: walks the schedule, interleaving valid reports across
//!   sites with malformed and not-a-device messages, and records the truth as it goes;
//! - [`report`] what one sensor says about one device in one round, before encoding:
//!   varied identifier spellings, and reports about things that are not devices;
//! - [`encode`] a report as bytes: Avro (schema ids 1 and 2) or JSON sensor dialects;
//! - [`malformed`] the kinds of malformed message, how each is built and the rejection
//!   reason sitetally must give it;
//! - [`truth`]  exact per-site, per-category and per-day distinct-device counts of what
//!   was emitted, malformed messages by kind and expected rejection reason;
//! - [`kafka`]  `sitetally simulate`: the [`kafka::SimulateArgs`] flags and the producer
//!   loop (rate limit, duration, event limit, delivery checks, `--truth-out`);
//! - `testing` (tests only) the fixtures the unit tests share: a fixed `now`, a small
//!   multi-day world and its stream.
//!
//! In memory (tests, benchmarks, the demo):
//!
//! ```
//! use sitetally_sensor_sim::{EventStream, MessageKind, SimConfig, SizeProfile, World};
//! use std::sync::Arc;
//!
//! let mut config = SimConfig::new(7, 3);
//! config.sizes = SizeProfile::Explicit(vec![10, 120, 40]);
//! config.grow_sites = 0; // growing sites may be enlarged to end past their licence
//! let world = Arc::new(World::new(config).unwrap());
//! let mut stream = EventStream::new(world, 1_795_424_400_000);
//! let valid = stream.by_ref().filter(|m| m.kind == MessageKind::Valid).count() as u64;
//! let truth = stream.truth();
//! assert_eq!(truth.valid, valid);
//! assert_eq!(truth.total_devices(), 10 + 120 + 40);
//! ```

mod catalog;
pub mod config;
pub mod encode;
pub mod kafka;
pub mod licence;
pub mod malformed;
pub mod report;
pub mod stream;
#[cfg(test)]
mod testing;
pub mod truth;
pub mod world;

pub use config::{SimConfig, SizeProfile};
pub use kafka::{produce, run_simulation, ProduceSettings, SimReport, SimulateArgs, StopReason};
pub use licence::Licence;
pub use malformed::MalformedKind;
pub use stream::{EventStream, MessageKind, SimMessage};
pub use truth::{GroundTruth, SiteTruth};
pub use world::{GrownSite, SiteKind, World};

/// Errors of the simulator. Only broker trouble is worth retrying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A setting is out of range; names the field.
    #[error("invalid simulator setting `{field}`: {reason}")]
    Config { field: &'static str, reason: String },
    /// The Kafka client could not be created or failed while producing.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Some messages were not acknowledged by the broker.
    #[error("{failed} of {sent} messages were not delivered (first error: {first_error})")]
    Delivery {
        sent: u64,
        failed: u64,
        first_error: String,
    },
    /// Writing the ground-truth file failed.
    #[error("writing ground truth to {path}: {source}")]
    TruthFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The producer thread panicked or was cancelled.
    #[error("simulator producer thread failed: {0}")]
    Task(String),
}

impl SimError {
    /// Broker errors may go away on retry; bad settings and I/O errors do not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SimError::Kafka(_) | SimError::Delivery { .. })
    }
}
