//! Kafka sink against librdkafka's in-process mock cluster (loopback only).

use crate::common::{book, t, MutableCounts};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use sitetally_licensing::alert::tier_alert_schema;
use sitetally_reconciler::sink::kafka::{AlertEncoding, KafkaSink, KafkaSinkConfig};
use sitetally_reconciler::sink::DeliveryLog;
use sitetally_reconciler::{Alert, Reconciler, Settings};
use sitetally_store::history::MemoryStateStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn consume(brokers: &str, topic: &str, want: usize) -> Vec<(Vec<u8>, Vec<u8>, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("it-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key_header = m
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "idempotency-key")
                        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).to_string()))
                })
                .unwrap_or_default();
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                key_header,
            ));
        }
    }
    out
}

async fn publish(
    encoding: AlertEncoding,
    topic: &str,
) -> (Vec<Alert>, Vec<(Vec<u8>, Vec<u8>, String)>) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(topic, 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut cfg = KafkaSinkConfig::new(brokers.clone());
    cfg.topic = topic.into();
    cfg.encoding = encoding;
    cfg.delivery_timeout = Duration::from_secs(20);
    let sink = Arc::new(KafkaSink::new(cfg, DeliveryLog::default()).unwrap());
    let counts = MutableCounts::default();
    counts.set("p1", 1_500, 0.0);
    counts.set("p3", 600, 0.0);
    let state = Arc::new(MemoryStateStore::default());
    let r = Reconciler::new(Settings::default(), book(), Arc::new(counts), state).with_sink(sink);
    let rep = r.run_once(t("2025-06-01T00:00:00Z")).await.unwrap();
    assert_eq!(rep.pending, 0, "delivered to the mock broker");
    // A second run raises nothing new.
    assert!(r
        .run_once(t("2025-06-01T01:00:00Z"))
        .await
        .unwrap()
        .alerts
        .is_empty());
    let got = tokio::task::block_in_place(|| consume(&brokers, topic, 2));
    drop(cluster);
    (rep.alerts, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_alerts_on_tier_alerts() {
    let (alerts, got) = publish(AlertEncoding::Avro, "tier-alerts").await;
    assert_eq!(got.len(), 2);
    for (key, payload, idem) in &got {
        let a = alerts
            .iter()
            .find(|a| &a.idempotency_key == idem)
            .expect("header carries the key");
        assert_eq!(key, a.subject.key().as_bytes());
        let v = apache_avro::from_avro_datum(tier_alert_schema(), &mut &payload[..], None).unwrap();
        let apache_avro::types::Value::Record(fields) = v else {
            panic!()
        };
        assert!(fields.iter().any(|(k, v)| k == "idempotency_key"
            && *v == apache_avro::types::Value::String(idem.clone())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_alerts_on_tier_alerts() {
    let (alerts, got) = publish(AlertEncoding::Json, "tier-alerts-json").await;
    assert_eq!(got.len(), 2);
    for (_, payload, idem) in &got {
        let a: Alert = serde_json::from_slice(payload).unwrap();
        assert_eq!(&a.idempotency_key, idem);
        assert!(alerts.contains(&a));
    }
}
