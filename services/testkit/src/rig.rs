//! The test rig's servers as `scripts/test.sh` starts them (ClickHouse and the Tansu
//! broker on loopback ports, named by `SITETALLY_TEST_*`): topics, producing, reading
//! dead letters, unique names, waiting with clear failures (never hanging).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sitetally_ingest::IngestConfig;
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub fn brokers() -> String {
    std::env::var("SITETALLY_TEST_KAFKA")
        .expect("SITETALLY_TEST_KAFKA is not set: run scripts/test.sh, which starts the broker")
}

pub fn clickhouse_url() -> String {
    std::env::var("SITETALLY_TEST_CLICKHOUSE_URL").expect(
        "SITETALLY_TEST_CLICKHOUSE_URL is not set: run scripts/test.sh, which starts ClickHouse",
    )
}

/// A name unique to this test run, for topics, groups and databases.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}_{}_{nanos}", std::process::id())
}

/// Logs of in-process ingest, shown for failing tests (`SITETALLY_TEST_LOG=info`).
pub fn init_logs() {
    let filter = std::env::var("SITETALLY_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub fn ingest_config(topic: &str, database: &str) -> IngestConfig {
    init_logs();
    let mut c = IngestConfig::default();
    c.kafka.brokers = brokers();
    c.kafka.topic = topic.to_string();
    c.kafka.group_id = format!("{topic}-group");
    c.clickhouse = ClickHouseConfig {
        url: clickhouse_url(),
        database: database.to_string(),
        ..Default::default()
    };
    c.batch.max_rows = 20_000;
    c.batch.max_interval_ms = 500;
    // Tansu 0.6's sqlite fetch sums record sizes over the rest of the partition on every
    // fetch, so fewer, larger fetches drain it much faster.
    c.kafka
        .properties
        .insert("fetch.max.bytes".into(), "52428800".into());
    c.kafka
        .properties
        .insert("max.partition.fetch.bytes".into(), "16777216".into());
    c
}

pub fn store(database: &str) -> ClickHouseStore {
    store_at(&clickhouse_url(), database)
}

/// A store on the ClickHouse at `url` (a test's own server).
pub fn store_at(url: &str, database: &str) -> ClickHouseStore {
    ClickHouseStore::new(&ClickHouseConfig {
        url: url.to_string(),
        database: database.to_string(),
        ..Default::default()
    })
    .expect("the rig store has no TLS files")
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    create_topics_on(&brokers(), names, partitions).await
}

/// [`create_topics`] on the broker at `bootstrap` (a test's own broker).
pub async fn create_topics_on(bootstrap: &str, names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create topics");
    for r in results {
        if let Err((name, code)) = r {
            panic!("creating topic {name} failed: {code}");
        }
    }
}

pub fn producer() -> ThreadedProducer<DefaultProducerContext> {
    producer_on(&brokers())
}

fn producer_on(bootstrap: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer")
}

/// Produces (key, payload) pairs and waits until all are acknowledged.
pub fn produce(topic: &str, messages: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> usize {
    produce_on(&brokers(), topic, messages)
}

/// [`produce`] to the broker at `bootstrap`.
pub fn produce_on(
    bootstrap: &str,
    topic: &str,
    messages: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> usize {
    let p = producer_on(bootstrap);
    let mut n = 0;
    for (key, payload) in messages {
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        n += 1;
    }
    p.flush(Duration::from_secs(120))
        .expect("all test messages acknowledged by the broker");
    n
}

/// Watches a group's committed offsets through one long-lived client (a new client per
/// look costs the broker a connection and a coordinator lookup each time).
pub struct CommitWatcher {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
    last: i64,
}

impl CommitWatcher {
    pub fn new(brokers: &str, group: &str, topic: &str, partitions: i32) -> Self {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        Self {
            consumer,
            partitions: tpl,
            last: 0,
        }
    }

    /// Sum over partitions of the committed offsets; the last known sum when the broker
    /// does not answer in time.
    pub fn total(&mut self) -> i64 {
        if let Ok(list) = self
            .consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(10))
        {
            self.last = list
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum();
        }
        self.last
    }
}

/// Sum over partitions of the group's committed offsets (messages processed and committed).
pub fn committed_total(brokers: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    CommitWatcher::new(brokers, group, topic, partitions).total()
}

impl CommitWatcher {
    /// Whether the broker answers: metadata and the group's committed offsets, each within
    /// 5 s. The error says which request failed and how.
    pub fn broker_answers(&self) -> Result<(), String> {
        self.consumer
            .fetch_metadata(None, Duration::from_secs(5))
            .map_err(|e| format!("metadata request: {e}"))?;
        self.consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(5))
            .map_err(|e| format!("committed-offsets request: {e}"))?;
        Ok(())
    }
}

/// Waits until the group has committed `total` messages of `topic`. On timeout the
/// failure says whose it is: "BROKER FAILURE" when the test broker no longer answers (a
/// fault of the rig's broker, not of sitetally), otherwise how far the commits got;
/// either way followed by `context()` (e.g. the consumer's logs).
pub async fn wait_committed(
    what: &str,
    bootstrap: &str,
    group: &str,
    (topic, partitions): (&str, i32),
    total: i64,
    limit: Duration,
    context: &dyn Fn() -> String,
) {
    let place = (bootstrap, group, topic, partitions);
    let reached = |c: i64| c == total;
    wait_commits(what, place, (format!("{total}"), &reached), limit, context).await;
}

/// Waits until the group has committed some messages of `topic` (a member is making
/// progress); fails as [`wait_committed`] does.
pub async fn wait_first_commit(
    what: &str,
    bootstrap: &str,
    group: &str,
    (topic, partitions): (&str, i32),
    limit: Duration,
    context: &dyn Fn() -> String,
) {
    let place = (bootstrap, group, topic, partitions);
    let reached = |c: i64| c > 0;
    wait_commits(what, place, ("at least 1".into(), &reached), limit, context).await;
}

/// Polls the committed total of (bootstrap, group, topic, partitions) until `reached`
/// holds for it; `wanted` says what was waited for in the failure.
async fn wait_commits(
    what: &str,
    (bootstrap, group, topic, partitions): (&str, &str, &str, i32),
    (wanted, reached): (String, &dyn Fn(i64) -> bool),
    limit: Duration,
    context: &dyn Fn() -> String,
) {
    let mut watcher = CommitWatcher::new(bootstrap, group, topic, partitions);
    let start = Instant::now();
    loop {
        let committed = watcher.total();
        if reached(committed) {
            return;
        }
        if start.elapsed() >= limit {
            let context = context();
            // librdkafka's words when the coordinator left heartbeats unanswered for a whole
            // session: the member is then dropped, and a broker that hands the partitions
            // to nobody (Tansu 0.6 on a large sqlite store) leaves the group idle.
            if context.contains("without a successful response from the group coordinator") {
                panic!(
                    "BROKER FAILURE (the test broker at {bootstrap}, not sitetally): waiting for \
                     {what}, its group coordinator left heartbeats unanswered for a whole \
                     session and the group never got its partitions back; committed \
                     {committed} of {wanted}\n{context}"
                );
            }
            match watcher.broker_answers() {
                Err(e) => panic!(
                    "BROKER FAILURE (the test broker at {bootstrap}, not sitetally): waiting for \
                     {what}, it stopped answering ({e}); committed {committed} of {wanted}\n{context}"
                ),
                Ok(()) => panic!(
                    "timed out after {limit:?} waiting for {what}: committed {committed} of \
                     {wanted}, and the broker answers\n{context}"
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until `check` is true, failing with `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A dead letter as read back from the DLQ topic.
#[derive(Debug)]
pub struct ReadDeadLetter {
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// A message's headers as text (lossy UTF-8), by key.
pub fn headers_of(m: &impl Message) -> HashMap<String, String> {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or(&[])).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads every message of `topic` (all partitions) from the beginning until `expected`
/// arrived or `limit` passed.
pub fn read_all(topic: &str, expected: usize, limit: Duration) -> Vec<ReadDeadLetter> {
    read_all_on(&brokers(), topic, expected, limit)
}

/// [`read_all`] from the broker at `bootstrap`.
pub fn read_all_on(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    limit: Duration,
) -> Vec<ReadDeadLetter> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let read = |m: rdkafka::message::BorrowedMessage<'_>| ReadDeadLetter {
        payload: m.payload().unwrap_or(&[]).to_vec(),
        headers: headers_of(&m),
    };
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < expected && start.elapsed() < limit {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(read(m));
        }
    }
    // Linger briefly to catch extras beyond `expected`.
    let linger = Instant::now();
    while linger.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(read(m));
        }
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
