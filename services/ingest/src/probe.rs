//! Broker reachability for readiness probes (`sitetally serve --kafka-brokers`, the
//! demo): a metadata request through one long-lived client.

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::Arc;
use std::time::Duration;

/// Asks the broker for its cluster metadata through one long-lived client.
pub struct BrokerProbe {
    consumer: Arc<BaseConsumer>,
    brokers: String,
    timeout: Duration,
}

impl BrokerProbe {
    /// A probe of `brokers` (bootstrap list); each check waits at most `timeout`.
    pub fn new(brokers: &str, timeout: Duration) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // An unreachable broker is what the probe reports, not something to log
            // every reconnect attempt of.
            .set_log_level(RDKafkaLogLevel::Critical)
            .create()?;
        Ok(Self {
            consumer: Arc::new(consumer),
            brokers: brokers.to_string(),
            timeout,
        })
    }

    /// The number of brokers in the cluster, or why none answered in time.
    pub async fn check(&self) -> Result<usize, String> {
        let consumer = self.consumer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            consumer
                .fetch_metadata(None, timeout)
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| format!("metadata request: {e}"))?
        .map_err(|e| format!("{}: {e}", self.brokers))
    }
}

impl sitetally_core::readiness::ReadinessProbe for BrokerProbe {
    fn what(&self) -> &str {
        "broker"
    }

    fn check(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { BrokerProbe::check(self).await.map(drop) })
    }
}
