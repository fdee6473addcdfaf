//! Dead-letter publishing: the original bytes, key and headers, plus headers saying why
//! and where from. Idempotent producer with acks=all; a batch's dead letters are
//! acknowledged before its offsets are committed.

use crate::batch::DeadLetter;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counts deliveries the broker did not acknowledge.
#[derive(Default)]
pub struct DeliveryTracker {
    failed: AtomicU64,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, "dead letter delivery failed");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub const HEADER_REASON: &str = "dlq.reason";
pub const HEADER_ERROR: &str = "dlq.error";
pub const HEADER_TOPIC: &str = "dlq.source.topic";
pub const HEADER_PARTITION: &str = "dlq.source.partition";
pub const HEADER_OFFSET: &str = "dlq.source.offset";

pub struct DeadLetterProducer {
    producer: ThreadedProducer<DeliveryTracker>,
    topic: String,
}

impl DeadLetterProducer {
    pub fn new(mut config: ClientConfig, topic: String) -> Result<Self, rdkafka::error::KafkaError> {
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        Ok(Self { producer: config.create_with_context(DeliveryTracker::default())?, topic })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes `letters` and waits until the broker acknowledged all of them.
    pub fn publish_all(&self, letters: &[DeadLetter], timeout: Duration) -> Result<(), String> {
        for l in letters {
            let mut headers = OwnedHeaders::new_with_capacity(l.headers.len() + 5);
            for (k, v) in &l.headers {
                headers = headers.insert(Header { key: k, value: Some(v) });
            }
            let partition = l.source_partition.to_string();
            let offset = l.source_offset.to_string();
            headers = headers
                .insert(Header { key: HEADER_REASON, value: Some(l.reason) })
                .insert(Header { key: HEADER_ERROR, value: Some(&l.error) })
                .insert(Header { key: HEADER_TOPIC, value: Some(&l.source_topic) })
                .insert(Header { key: HEADER_PARTITION, value: Some(&partition) })
                .insert(Header { key: HEADER_OFFSET, value: Some(&offset) });
            let mut record = BaseRecord::<Vec<u8>, Vec<u8>>::to(&self.topic).payload(&l.payload).headers(headers);
            if let Some(k) = &l.key {
                record = record.key(k);
            }
            let mut record = record;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(format!("dead letter not queued: {e}")),
                }
            }
        }
        // flush() fails unless every queued message was delivered or failed; failures are
        // counted by the delivery callback.
        let before_errors = self.failed_deliveries();
        self.producer.flush(timeout).map_err(|e| format!("dead letters not acknowledged: {e}"))?;
        if self.producer.in_flight_count() > 0 {
            return Err("dead letters still in flight after flush".into());
        }
        if self.failed_deliveries() != before_errors {
            return Err("broker rejected dead letters".into());
        }
        Ok(())
    }

    fn failed_deliveries(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }
}
