//! Dead letters and their publishing: the original bytes, key and headers, plus headers saying why
//! and where from. Idempotent producer with acks=all; a batch's dead letters are
//! acknowledged before its offsets are committed.

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest payload a dead letter carries: half of the producer's default
/// `message.max.bytes` (1 MB), leaving room for key and headers. A bigger message (the
/// codec refuses anything over 1 MiB, but a hostile producer can send 100 MB) is
/// dead-lettered with this prefix and `dlq.payload.truncated_from` = its length, so one
/// message can neither wedge the DLQ producer nor hold a batch's memory.
pub const MAX_DEAD_LETTER_PAYLOAD: usize = 512 * 1024;

/// The payload a dead letter keeps, and the original length when it had to be cut.
pub fn bounded_payload(payload: &[u8]) -> (Vec<u8>, Option<usize>) {
    if payload.len() > MAX_DEAD_LETTER_PAYLOAD {
        (
            payload[..MAX_DEAD_LETTER_PAYLOAD].to_vec(),
            Some(payload.len()),
        )
    } else {
        (payload.to_vec(), None)
    }
}

/// A message bound for the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    /// The source payload, at most [`MAX_DEAD_LETTER_PAYLOAD`] bytes of it.
    pub payload: Vec<u8>,
    /// The source payload's length when `payload` is only its prefix.
    pub truncated_from: Option<usize>,
    /// The source message's own headers, kept.
    pub headers: Vec<(String, Vec<u8>)>,
    pub reason: &'static str,
    pub error: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    /// Delivery state, shared with the producer's callback.
    pub delivery: Delivery,
}

/// Where one dead letter stands with the broker. Shared with the delivery callback, so a
/// retry after a timeout resends only letters that definitively failed (or were never
/// sent), never one still in flight or already acknowledged: no duplicates in the DLQ.
#[derive(Debug, Clone, Default)]
pub struct Delivery(Arc<AtomicU8>);

const UNSENT: u8 = 0;
const IN_FLIGHT: u8 = 1;
const ACKED: u8 = 2;
const FAILED: u8 = 3;

impl Delivery {
    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Release);
    }
}

/// Records each dead letter's delivery outcome.
#[derive(Default)]
pub struct DeliveryTracker;

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = Arc<AtomicU8>;

    fn delivery(&self, result: &DeliveryResult<'_>, state: Arc<AtomicU8>) {
        match result {
            Ok(_) => state.store(ACKED, Ordering::Release),
            Err((e, _)) => {
                // One line per letter would flood the log during a broker outage; the
                // flush's warning counts the rejected letters instead.
                tracing::debug!(error = %e, "dead letter delivery failed; it will be sent again");
                state.store(FAILED, Ordering::Release);
            }
        }
    }
}

/// Why dead letters are not (all) acknowledged yet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DlqError {
    /// The producer refused a letter outright (e.g. larger than `message.max.bytes`, or an
    /// unknown topic): sending it again fails the same way until the config or the topic
    /// changes.
    #[error("dead letter not queued: {0}")]
    NotQueued(KafkaError),
    /// Letters still in flight when the wait ended, or rejected by the broker: the next
    /// call resends the rejected ones and waits for the rest.
    #[error(
        "dead letters not acknowledged: {in_flight} in flight, {rejected} rejected{}",
        flush.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
    )]
    NotAcknowledged {
        in_flight: usize,
        rejected: usize,
        /// The producer's flush error, if its wait timed out.
        flush: Option<KafkaError>,
    },
}

impl DlqError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, DlqError::NotAcknowledged { .. })
    }
}

pub const HEADER_REASON: &str = "dlq.reason";
pub const HEADER_ERROR: &str = "dlq.error";
pub const HEADER_TOPIC: &str = "dlq.source.topic";
pub const HEADER_PARTITION: &str = "dlq.source.partition";
pub const HEADER_OFFSET: &str = "dlq.source.offset";
pub const HEADER_TRUNCATED_FROM: &str = "dlq.payload.truncated_from";

pub struct DeadLetterProducer {
    producer: ThreadedProducer<DeliveryTracker>,
    topic: String,
}

impl DeadLetterProducer {
    pub fn new(mut config: ClientConfig, topic: String) -> Result<Self, KafkaError> {
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        Ok(Self {
            producer: config.create_with_context(DeliveryTracker)?,
            topic,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Letters queued or sent but not yet acknowledged or failed.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Publishes `letters` and waits until the broker acknowledged all of them. Called
    /// again after a failure, it sends only the letters that failed or were never sent.
    pub fn publish_all(&self, letters: &[DeadLetter], timeout: Duration) -> Result<(), DlqError> {
        for l in letters
            .iter()
            .filter(|l| matches!(l.delivery.get(), UNSENT | FAILED))
        {
            let mut headers = OwnedHeaders::new_with_capacity(l.headers.len() + 5);
            for (k, v) in &l.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let partition = l.source_partition.to_string();
            let offset = l.source_offset.to_string();
            headers = headers
                .insert(Header {
                    key: HEADER_REASON,
                    value: Some(l.reason),
                })
                .insert(Header {
                    key: HEADER_ERROR,
                    value: Some(&l.error),
                })
                .insert(Header {
                    key: HEADER_TOPIC,
                    value: Some(&l.source_topic),
                })
                .insert(Header {
                    key: HEADER_PARTITION,
                    value: Some(&partition),
                })
                .insert(Header {
                    key: HEADER_OFFSET,
                    value: Some(&offset),
                });
            if let Some(len) = l.truncated_from {
                headers = headers.insert(Header {
                    key: HEADER_TRUNCATED_FROM,
                    value: Some(&len.to_string()),
                });
            }
            let mut record = BaseRecord::<Vec<u8>, Vec<u8>, Arc<AtomicU8>>::with_opaque_to(
                &self.topic,
                l.delivery.0.clone(),
            )
            .payload(&l.payload)
            .headers(headers);
            if let Some(k) = &l.key {
                record = record.key(k);
            }
            let mut record = record;
            loop {
                l.delivery.set(IN_FLIGHT);
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        l.delivery.set(UNSENT);
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => {
                        l.delivery.set(UNSENT);
                        return Err(DlqError::NotQueued(e));
                    }
                }
            }
        }
        // A timed-out flush leaves letters in flight: the producer keeps retrying them (up to
        // message.timeout.ms) and the next call resends only what definitively failed.
        let flushed = self.producer.flush(timeout);
        let (pending, failed) = letters
            .iter()
            .fold((0, 0), |(p, f), l| match l.delivery.get() {
                ACKED => (p, f),
                FAILED => (p, f + 1),
                _ => (p + 1, f),
            });
        match (pending, failed) {
            (0, 0) => Ok(()),
            (in_flight, rejected) => Err(DlqError::NotAcknowledged {
                in_flight,
                rejected,
                flush: flushed.err(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_payload_is_dead_lettered_as_a_bounded_prefix() {
        let huge = vec![7u8; 100 * 1024 * 1024];
        let (kept, from) = bounded_payload(&huge);
        assert_eq!(kept.len(), MAX_DEAD_LETTER_PAYLOAD);
        assert_eq!(from, Some(huge.len()));
        let (kept, from) = bounded_payload(b"{not json");
        assert_eq!((kept.as_slice(), from), (&b"{not json"[..], None));
    }

    fn letter(i: i64) -> DeadLetter {
        DeadLetter {
            key: None,
            payload: vec![b'x'; 8],
            truncated_from: None,
            headers: vec![],
            reason: "json_decode",
            error: "bad".into(),
            source_topic: "t".into(),
            source_partition: 0,
            source_offset: i,
            delivery: Delivery::default(),
        }
    }

    #[test]
    fn a_retry_after_a_timeout_does_not_resend_letters_still_in_flight() {
        // A loopback port nobody listens on: nothing can be acknowledged.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", closed.to_string());
        let dlq = DeadLetterProducer::new(config, "t.dlq".into()).unwrap();
        let letters: Vec<DeadLetter> = (0..3).map(letter).collect();
        let err = dlq
            .publish_all(&letters, Duration::from_millis(200))
            .unwrap_err();
        assert!(
            matches!(
                err,
                DlqError::NotAcknowledged {
                    in_flight: 3,
                    rejected: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.is_retryable());
        assert_eq!(dlq.in_flight(), 3);
        assert!(dlq
            .publish_all(&letters, Duration::from_millis(200))
            .is_err());
        assert_eq!(
            dlq.in_flight(),
            3,
            "the retry must not queue the letters a second time"
        );
        // A letter that definitively failed is sent again.
        letters[0].delivery.set(FAILED);
        let _ = dlq.publish_all(&letters, Duration::from_millis(100));
        assert_eq!(dlq.in_flight(), 4);
    }
}
