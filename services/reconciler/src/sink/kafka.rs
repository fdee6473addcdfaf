//! Kafka sink: publishes alerts on `tier-alerts`, keyed by subject so one subject's
//! alerts stay ordered, with the idempotency key in a header. The producer is idempotent
//! with `acks=all` (DESIGN §6).

use super::{AlertSink, DeliveryLog, DeliveryOutcome, DeliveryRecord, SinkError};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use sitetally_licensing::alert::Alert;
use std::time::Duration;

/// Default topic.
pub const TIER_ALERTS_TOPIC: &str = "tier-alerts";

/// How alerts are encoded on the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AlertEncoding {
    /// Avro datum per `schemas/tier_alert.avsc`; in the schema-registry wire format when a
    /// schema id is configured.
    #[default]
    Avro,
    /// The JSON document webhooks receive.
    Json,
}

/// Kafka sink configuration.
#[derive(Clone)]
pub struct KafkaSinkConfig {
    pub brokers: String,
    pub topic: String,
    pub encoding: AlertEncoding,
    /// Schema-registry id of `tier_alert.avsc`; None = bare Avro datum.
    pub schema_id: Option<u32>,
    /// How long one delivery may wait for the broker (default 30 s).
    pub delivery_timeout: Duration,
    /// Extra librdkafka properties (security settings...).
    pub extra: Vec<(String, String)>,
}

impl std::fmt::Debug for KafkaSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra: Vec<(&str, &str)> = self
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), sitetally_core::secret::shown_value(k, v)))
            .collect();
        f.debug_struct("KafkaSinkConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("encoding", &self.encoding)
            .field("schema_id", &self.schema_id)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("extra", &extra)
            .finish()
    }
}

impl KafkaSinkConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: TIER_ALERTS_TOPIC.into(),
            encoding: AlertEncoding::Avro,
            schema_id: None,
            delivery_timeout: Duration::from_secs(30),
            extra: Vec::new(),
        }
    }
}

/// Publishes alerts to Kafka.
pub struct KafkaSink {
    name: String,
    cfg: KafkaSinkConfig,
    producer: FutureProducer,
    log: DeliveryLog,
}

impl KafkaSink {
    pub fn new(cfg: KafkaSinkConfig, log: DeliveryLog) -> Result<Self, SinkError> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                cfg.delivery_timeout.as_millis().to_string(),
            );
        for (k, v) in &cfg.extra {
            cc.set(k, v);
        }
        let producer: FutureProducer = cc
            .create()
            .map_err(|e| SinkError::Permanent(format!("kafka producer: {e}")))?;
        Ok(Self {
            name: format!("kafka:{}", cfg.topic),
            cfg,
            producer,
            log,
        })
    }

    fn encode(&self, alert: &Alert) -> Result<Vec<u8>, SinkError> {
        match self.cfg.encoding {
            AlertEncoding::Json => Ok(alert.to_json()),
            AlertEncoding::Avro => match self.cfg.schema_id {
                Some(id) => alert.to_avro_wire(id),
                None => alert.to_avro_datum(),
            }
            .map_err(|e| SinkError::Permanent(format!("avro encoding: {e}"))),
        }
    }
}

fn classify(e: &KafkaError) -> SinkError {
    let permanent = matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::InvalidRecord
        )
    );
    if permanent {
        SinkError::Permanent(e.to_string())
    } else {
        SinkError::Retryable(e.to_string())
    }
}

#[async_trait::async_trait]
impl AlertSink for KafkaSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, alert: &Alert) -> Result<(), SinkError> {
        let payload = self.encode(alert)?;
        let key = alert.subject.key();
        let content_type = match self.cfg.encoding {
            AlertEncoding::Avro => "avro/binary",
            AlertEncoding::Json => "application/json",
        };
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "idempotency-key",
                value: Some(alert.idempotency_key.as_bytes()),
            })
            .insert(Header {
                key: "content-type",
                value: Some(content_type.as_bytes()),
            });
        let record = FutureRecord::to(&self.cfg.topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        let res = self
            .producer
            .send(record, self.cfg.delivery_timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| classify(&e));
        self.log.record(DeliveryRecord {
            at: chrono::Utc::now(),
            sink: self.name.clone(),
            idempotency_key: alert.idempotency_key.clone(),
            attempt: 1,
            outcome: match &res {
                Ok(()) => DeliveryOutcome::Delivered,
                Err(e) if e.is_retryable() => DeliveryOutcome::Retry,
                Err(_) => DeliveryOutcome::Failed,
            },
            status_code: None,
            error: res.as_ref().err().map(|e| e.to_string()),
        });
        res
    }
}
