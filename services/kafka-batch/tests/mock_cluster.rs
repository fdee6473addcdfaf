//! `MessageQueue` against librdkafka's in-process mock cluster (a fast check of the FFI
//! layer; ingest's integration tests run it against the real broker, Tansu).

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, TopicPartitionList};
use sitetally_kafka_batch::{ConsumedMessage, Forwarder, MessageQueue};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TOPIC: &str = "discoveries";
const PARTITIONS: i32 = 3;
const MESSAGES: usize = 300;
const TAKE_AT_MOST: usize = 64;

/// Forwards each assignment before librdkafka applies it (as ingest does).
#[derive(Default)]
struct Forwarding {
    forwarder: Mutex<Option<Forwarder>>,
    forwarded: Mutex<usize>,
}

impl ClientContext for Forwarding {}

impl ConsumerContext for Forwarding {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(tpl), Some(f)) = (rebalance, &*self.forwarder.lock().unwrap()) {
            *self.forwarded.lock().unwrap() += f.forward(consumer, tpl);
        }
    }
}

fn consumer(brokers: &str, group: &str) -> BaseConsumer<Forwarding> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create_with_context(Forwarding::default())
        .unwrap()
}

#[derive(Debug, PartialEq)]
struct Seen {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

fn produce(brokers: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for i in 0..MESSAGES {
        let (payload, key) = (format!("payload-{i}"), format!("key-{i}"));
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "n",
                value: Some(&i.to_be_bytes()[..]),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            });
        producer
            .send(
                BaseRecord::to(TOPIC)
                    .partition(i as i32 % PARTITIONS)
                    .payload(&payload)
                    .key(&key)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn batches_carry_every_message_with_its_key_headers_and_position() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    produce(&brokers);

    let consumer = consumer(&brokers, "batch-test");
    let queue = MessageQueue::new(&consumer);
    *consumer.context().forwarder.lock().unwrap() = Some(queue.forwarder());
    let mut batch = queue.batch();
    consumer.subscribe(&[TOPIC]).unwrap();

    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut largest_take = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < MESSAGES {
        assert!(
            Instant::now() < deadline,
            "only {} of {MESSAGES} messages within 60 s",
            seen.len()
        );
        // Messages fetched before the forwarding still arrive here.
        // Serves the rebalance; a message here would have missed the forwarding.
        if let Some(Ok(m)) = consumer.poll(Duration::ZERO) {
            panic!(
                "{} came through poll, not the message queue",
                String::from_utf8_lossy(m.payload())
            );
        }
        let taken = queue.take(&mut batch, TAKE_AT_MOST, Duration::from_millis(100));
        assert_eq!(taken, batch.len());
        assert!(
            taken <= TAKE_AT_MOST,
            "took {taken}, asked for at most {TAKE_AT_MOST}"
        );
        largest_take = largest_take.max(taken);
        for i in 0..taken {
            let m = batch.get(i);
            assert_eq!(m.error(), None);
            let payload = String::from_utf8(m.payload().to_vec()).unwrap();
            let previous = seen.insert(
                payload.clone(),
                Seen {
                    topic: m.topic().into(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    headers: m.header_list(),
                },
            );
            assert!(previous.is_none(), "{payload} delivered twice");
        }
    }

    assert!(
        largest_take > 1,
        "the queue never handed over more than one message at a time"
    );
    assert_eq!(
        *consumer.context().forwarded.lock().unwrap(),
        PARTITIONS as usize,
        "every assigned partition forwarded"
    );
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for i in 0..MESSAGES {
        let s = &seen[&format!("payload-{i}")];
        assert_eq!(s.topic, TOPIC);
        assert_eq!(s.partition, i as i32 % PARTITIONS, "payload-{i}");
        assert_eq!(s.key.as_deref(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(
            s.headers,
            vec![
                ("n".to_string(), i.to_be_bytes().to_vec()),
                ("empty".to_string(), Vec::new())
            ]
        );
        offsets.entry(s.partition).or_default().push(s.offset);
    }
    for (partition, mut offs) in offsets {
        offs.sort_unstable();
        let expected: Vec<i64> = (0..(MESSAGES as i64 / PARTITIONS as i64)).collect();
        assert_eq!(offs, expected, "offsets of partition {partition}");
    }
}

#[test]
fn a_forwarder_does_nothing_for_another_consumer_or_after_its_queue() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, PARTITIONS, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let (first, second) = (consumer(&brokers, "a"), consumer(&brokers, "b"));
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(TOPIC, 0);
    let forwarder = {
        let queue = MessageQueue::new(&first);
        let forwarder = queue.forwarder();
        assert_eq!(forwarder.forward(&first, &partitions), 1);
        assert_eq!(forwarder.forward(&second, &partitions), 0, "another client");
        forwarder
    };
    assert_eq!(forwarder.forward(&first, &partitions), 0, "queue gone");
}

#[test]
fn an_empty_queue_gives_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "idle")
        .create()
        .unwrap();
    let queue = MessageQueue::new(&consumer);
    let mut batch = queue.batch();
    assert_eq!(queue.take(&mut batch, 10, Duration::ZERO), 0);
    assert_eq!(queue.take(&mut batch, 10, Duration::from_millis(20)), 0);
    assert!(batch.is_empty());
}
