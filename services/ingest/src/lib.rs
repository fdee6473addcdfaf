//! sitetally-ingest: the Kafka consumer group that turns discovery events into sightings.
//!
//! Layout:
//! - [`config`]   the one typed config (defaults → TOML file → `SITETALLY_` environment);
//! - [`consumer`] the consume loop: take messages in batches (`sitetally-kafka-batch`) ▶
//!   pipeline ▶ batch ▶ flush ▶ commit, pause on storage outages, flush-or-discard on
//!   partition revocation;
//! - [`batch`]    rows, dead letters and offsets waiting for one flush;
//! - [`error`]    typed errors, each saying whether a retry can help;
//! - [`dlq`]      dead letters and their producer (`<topic>.dlq`, original bytes + reason
//!   headers);
//! - [`registry`] Confluent-compatible schema registry client (bundled schemas otherwise);
//! - [`metrics`]  metric names, described once.
//!
//! The invariant everything here serves: **a Kafka offset is committed only after the rows
//! and dead letters produced by the messages before it are acknowledged.**

pub mod batch;
pub mod config;
pub mod consumer;
pub mod dlq;
pub mod error;
pub mod metrics;
pub mod probe;
pub mod registry;

pub use config::IngestConfig;
pub use consumer::{run, IngestReport};
pub use error::IngestError;
