//! Alert delivery: the [`AlertSink`] trait, a delivery log, and fan-out that runs every
//! sink concurrently so a failing one never blocks the others.
//!
//! - [`webhook`] HTTP POST of JSON with an HMAC-SHA256 signature, retries with backoff;
//! - [`kafka`]   the `tier-alerts` topic, Avro (`schemas/tier_alert.avsc`) or JSON,
//!   idempotent producer with `acks=all`.

pub mod kafka;
pub mod webhook;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sitetally_licensing::alert::Alert;
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Worth trying again later (timeouts, 5xx, 429, broker unavailable).
    #[error("retryable: {0}")]
    Retryable(String),
    /// Will never succeed as is (4xx, bad configuration, encoding error).
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SinkError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable(_))
    }
}

/// Somewhere alerts go.
#[async_trait::async_trait]
pub trait AlertSink: Send + Sync {
    /// Unique, stable name (kept in pending-delivery state across restarts).
    fn name(&self) -> &str;
    /// Delivers one alert; the sink does its own retries before giving up.
    async fn deliver(&self, alert: &Alert) -> Result<(), SinkError>;
}

/// Result of one delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; will be retried.
    Retry,
    /// Failed for good (permanent error or attempts exhausted for this run).
    Failed,
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub at: DateTime<Utc>,
    pub sink: String,
    pub idempotency_key: String,
    pub attempt: u32,
    pub outcome: DeliveryOutcome,
    /// HTTP status, when there was one.
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

/// Every delivery attempt: the most recent ones in memory, and all of them appended as
/// JSON lines to a file when one is configured.
#[derive(Debug, Clone, Default)]
pub struct DeliveryLog {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug, Default)]
struct LogInner {
    recent: VecDeque<DeliveryRecord>,
    file: Option<PathBuf>,
}

const RECENT: usize = 10_000;

impl DeliveryLog {
    /// A log that also appends JSON lines to `path`.
    pub fn with_file(path: impl Into<PathBuf>) -> Self {
        let log = Self::default();
        log.inner.lock().expect("log lock").file = Some(path.into());
        log
    }

    pub fn record(&self, rec: DeliveryRecord) {
        match rec.outcome {
            DeliveryOutcome::Delivered => {
                tracing::info!(sink = %rec.sink, key = %rec.idempotency_key, attempt = rec.attempt, "alert delivered")
            }
            _ => {
                tracing::warn!(sink = %rec.sink, key = %rec.idempotency_key, attempt = rec.attempt, outcome = ?rec.outcome, error = rec.error.as_deref().unwrap_or(""), "alert delivery failed")
            }
        }
        let mut inner = self.inner.lock().expect("log lock");
        if let Some(path) = &inner.file {
            let line = serde_json::to_string(&rec).expect("records serialize");
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = res {
                tracing::warn!(path = %path.display(), error = %e, "cannot append to delivery log");
            }
        }
        if inner.recent.len() == RECENT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(rec);
    }

    /// The most recent records, oldest first.
    pub fn records(&self) -> Vec<DeliveryRecord> {
        self.inner
            .lock()
            .expect("log lock")
            .recent
            .iter()
            .cloned()
            .collect()
    }
}

/// Per sink, the alerts it acknowledged in a fan-out.
pub type Acknowledged = Vec<(String, Vec<String>)>;

/// Delivers `work` (sink name → alerts for it) with every sink in its own task, so a slow
/// or failing sink delays only itself. Returns, per sink, the idempotency keys it
/// acknowledged or failed permanently on (both are done with: nothing to retry).
pub async fn fan_out(
    sinks: &[Arc<dyn AlertSink>],
    work: Vec<(String, Vec<Alert>)>,
) -> Acknowledged {
    let mut set = tokio::task::JoinSet::new();
    for (name, alerts) in work {
        let Some(sink) = sinks.iter().find(|s| s.name() == name).cloned() else {
            continue;
        };
        set.spawn(async move {
            let mut done = Vec::new();
            for alert in alerts {
                let result = sink.deliver(&alert).await;
                crate::metrics::record_delivery(&name, &result);
                match result {
                    Ok(()) => done.push(alert.idempotency_key.clone()),
                    Err(SinkError::Permanent(e)) => {
                        tracing::error!(sink = %name, key = %alert.idempotency_key, error = %e, "alert dropped for this sink: permanent error");
                        done.push(alert.idempotency_key.clone());
                    }
                    Err(SinkError::Retryable(_)) => {}
                }
            }
            (name, done)
        });
    }
    let mut out = Vec::new();
    while let Some(res) = set.join_next().await {
        match res {
            Ok(pair) => out.push(pair),
            Err(e) => tracing::error!(error = %e, "alert sink task panicked"),
        }
    }
    out
}

/// Collects alerts in memory (tests, offline runs).
#[derive(Debug, Default)]
pub struct MemorySink {
    name: String,
    pub alerts: Mutex<Vec<Alert>>,
}

impl MemorySink {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            alerts: Mutex::new(Vec::new()),
        }
    }

    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().expect("sink lock").clone()
    }
}

#[async_trait::async_trait]
impl AlertSink for MemorySink {
    fn name(&self) -> &str {
        &self.name
    }
    async fn deliver(&self, alert: &Alert) -> Result<(), SinkError> {
        self.alerts.lock().expect("sink lock").push(alert.clone());
        Ok(())
    }
}
