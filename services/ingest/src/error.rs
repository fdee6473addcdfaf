//! The ingest library's errors: [`IngestError`] from [`crate::run`], [`FlushError`] for one
//! failed flush. Each says whether retrying can help.
//!
//! A message carries its cause's text (`warn!(error = %e, ..)` logs say everything), so
//! causes are not also exposed as `source()`, which would print them twice in a chain.

use crate::config::ConfigError;
use crate::dlq::DlqError;
use crate::registry::RegistryError;
use sitetally_store::StoreError;
use std::time::Duration;

/// Why ingest could not start or stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("invalid ingest config: {0}")]
    Config(ConfigError),
    #[error("{0}")]
    Registry(RegistryError),
    /// Creating a Kafka client or subscribing failed (`what` says which).
    #[error("{what}: {error}")]
    Kafka {
        what: &'static str,
        error: rdkafka::error::KafkaError,
    },
    /// The ClickHouse client could not be set up (an unreadable TLS CA or key file).
    #[error("ClickHouse client: {0}")]
    StoreSetup(StoreError),
    /// Storage refused the schema migration. Retryable failures are waited out at start-up,
    /// so this is returned only for a permanent one (or a retryable one seen at shutdown).
    #[error("storage migration failed: {0}")]
    Migration(StoreError),
    /// The consumer thread panicked or was cancelled.
    #[error("ingest consumer thread failed: {0}")]
    Worker(tokio::task::JoinError),
}

impl IngestError {
    /// Whether starting ingest again unchanged may succeed. Config, client and registry
    /// URL errors need a change first; a panicked worker is a bug.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Migration(e) => e.is_retryable(),
            IngestError::Config(_)
            | IngestError::StoreSetup(_)
            | IngestError::Registry(_)
            | IngestError::Kafka { .. }
            | IngestError::Worker(_) => false,
        }
    }
}

/// Why one flush (dead letters ▶ rows ▶ commit) failed. The batch is kept and the flush
/// retried with backoff while consumption is paused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    #[error("{0}")]
    DeadLetters(DlqError),
    #[error("storage write failed: {0}")]
    Storage(StoreError),
    /// The store did not answer within `clickhouse.timeout`.
    #[error("storage write timed out after {0:?}")]
    StorageTimeout(Duration),
}

impl FlushError {
    /// What the paused batch waits for, in words for the log.
    pub fn blocked_on(&self) -> &'static str {
        match self {
            FlushError::DeadLetters(_) => {
                "the dead-letter topic acknowledges the batch's dead letters"
            }
            FlushError::Storage(_) | FlushError::StorageTimeout(_) => "storage accepts the batch",
        }
    }

    /// Whether the same flush may succeed later. A permanent failure is still retried (the
    /// batch cannot be dropped without losing rows), but it needs an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            FlushError::DeadLetters(e) => e.is_retryable(),
            FlushError::Storage(e) => e.is_retryable(),
            FlushError::StorageTimeout(_) => true,
        }
    }
}

impl From<DlqError> for FlushError {
    fn from(e: DlqError) -> Self {
        FlushError::DeadLetters(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_and_permanent_are_told_apart() {
        let unavailable = || StoreError::Unavailable("connection refused".into());
        let rejected = || StoreError::Rejected("no such column".into());
        assert!(FlushError::Storage(unavailable()).is_retryable());
        assert!(!FlushError::Storage(rejected()).is_retryable());
        assert!(FlushError::StorageTimeout(Duration::from_secs(1)).is_retryable());
        let unacked = DlqError::NotAcknowledged {
            in_flight: 1,
            rejected: 0,
            flush: None,
        };
        assert!(FlushError::from(unacked).is_retryable());
        assert!(IngestError::Migration(unavailable()).is_retryable());
        assert!(!IngestError::Migration(rejected()).is_retryable());
        let config = ConfigError {
            field: "batch.max_rows",
            problem: "must be at least 1",
        };
        let e = IngestError::Config(config);
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "invalid ingest config: batch.max_rows: must be at least 1"
        );
    }
}
