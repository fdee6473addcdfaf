//! The consume loop. One OS thread owns a `BaseConsumer` (several times faster than
//! `StreamConsumer` in published measurements, and no per-message task or channel hop)
//! and runs every message through the synchronous [`Pipeline`]. Messages are taken from
//! librdkafka many at a time ([`MessageQueue`]); `poll` serves rebalances and errors. Storage writes are the
//! only async calls, made with `block_on` on the service's Tokio runtime at flush time.
//!
//! Flush = publish dead letters (acked) ▶ write rows (acked) ▶ commit offsets (last + 1).
//! A failed flush pauses every assigned partition and retries with backoff while the
//! loop keeps polling (so the group does not evict us); success resumes consumption.
//! On revocation the batch is flushed, or discarded within a bounded time: its offsets
//! were never committed, so the next owner re-reads it, and dedup forgets what it had
//! marked as written.
//! A message whose schema the registry cannot serve (registry down) is not bad data: its
//! partition is rewound to it and paused for a backoff, then the message is read again;
//! other partitions carry on.

use crate::batch::Batch;
use crate::config::{BatchConfig, IngestConfig};
use crate::dlq::{DeadLetter, DeadLetterProducer};
use crate::error::{FlushError, IngestError};
use crate::metrics as m;
use ::metrics::{counter, gauge, histogram};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sitetally_core::codec::{BundledSchemas, Codec, SchemaResolver};
use sitetally_core::pipeline::{Outcome, Pipeline, PipelineStats};
use sitetally_kafka_batch::{ConsumedMessage, Forwarder, MessageQueue};
use sitetally_store::clickhouse::ClickHouseStore;
use sitetally_store::Store;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

/// What one run of ingest did (returned at shutdown; also in the metrics).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IngestReport {
    pub messages: u64,
    pub new_devices: u64,
    pub duplicates: u64,
    pub not_a_device: u64,
    pub rejected: u64,
    pub dead_letters_published: u64,
    pub rows_written: u64,
    pub flushes: u64,
    pub failed_flushes: u64,
    pub discarded_batches: u64,
    /// Messages set aside because the schema registry was unavailable (each re-read later).
    pub registry_retries: u64,
    /// Messages handed over in batches by the message queue; the rest came one at a time
    /// through `poll` (from a partition that could not be forwarded).
    pub taken_in_batches: u64,
    /// Milliseconds from start until the first message arrived (group join + first fetch).
    pub first_message_after_ms: Option<u64>,
    /// Why the last flush failed, while no flush has succeeded since (e.g. the store's
    /// disk is full): what a caller reports instead of a summary of what is stored.
    pub last_flush_error: Option<String>,
}

/// Runs ingest against ClickHouse until `shutdown` resolves.
pub async fn run(
    config: IngestConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<IngestReport, IngestError> {
    let store: Arc<dyn Store> =
        Arc::new(ClickHouseStore::new(&config.clickhouse).map_err(IngestError::StoreSetup)?);
    run_with_store(config, store, shutdown).await
}

/// Runs ingest against any [`Store`] (the demo passes its embedded store).
pub async fn run_with_store(
    config: IngestConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<IngestReport, IngestError> {
    config.validate().map_err(IngestError::Config)?;
    let stop = Arc::new(AtomicBool::new(false));
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(config.batch.initial_backoff_ms);
    loop {
        match store.migrate().await {
            Ok(applied) => {
                info!(applied = ?applied, "storage schema up to date");
                break;
            }
            Err(e) if e.is_retryable() => {
                warn!(error = %e, retry_in = ?backoff, "storage unavailable at start-up; waiting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut shutdown => return Ok(IngestReport::default()),
                }
                backoff = (backoff * 2).min(Duration::from_millis(config.batch.max_backoff_ms));
            }
            Err(e) => return Err(IngestError::Migration(e)),
        }
    }
    let rt = tokio::runtime::Handle::current();
    let stop_flag = stop.clone();
    let mut worker =
        tokio::task::spawn_blocking(move || consume_loop(config, store, rt, stop_flag));
    tokio::select! {
        res = &mut worker => return res.map_err(IngestError::Worker)?,
        _ = &mut shutdown => {
            info!("shutdown requested: flushing, committing and leaving the group");
            stop.store(true, Ordering::SeqCst);
        }
    }
    worker.await.map_err(IngestError::Worker)?
}

/// Everything the loop and the rebalance callback share.
struct Worker {
    pipeline: Pipeline,
    batch: Batch,
    store: Arc<dyn Store>,
    dlq: DeadLetterProducer,
    rt: tokio::runtime::Handle,
    cfg: BatchConfig,
    /// Bound on one batch write: `clickhouse.timeout` (applied to whichever store runs, the
    /// demo's embedded one too).
    write_timeout: Duration,
    paused: bool,
    backoff: Duration,
    /// When a paused batch's next flush attempt is due (after a failed flush).
    retry_at: Option<Instant>,
    report: IngestReport,
    published: PipelineStats,
    /// When the last "dedup cache full" warning was logged (at most one a minute).
    dedup_full_warned_at: Option<Instant>,
    /// A message whose schema the registry could not serve: its partition is paused and
    /// rewound to it until `resume_at`, then it is read again.
    registry_retry: Option<RegistryRetry>,
    registry_backoff: Duration,
}

struct IngestContext {
    worker: Arc<Mutex<Worker>>,
    /// Forwards assigned partitions to the consume loop's [`MessageQueue`] before
    /// librdkafka starts fetching them (set before the consumer subscribes).
    forwarder: Mutex<Option<Forwarder>>,
}

impl ClientContext for IngestContext {
    fn stats(&self, stats: Statistics) {
        for topic in stats.topics.values() {
            for p in topic.partitions.values() {
                if p.partition >= 0 && p.consumer_lag >= 0 {
                    gauge!(m::CONSUMER_LAG, "topic" => topic.topic.clone(), "partition" => p.partition.to_string())
                        .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                info!(
                    partitions = tpl.count(),
                    "partitions revoked: finishing in-flight work"
                );
                gauge!(m::ASSIGNED_PARTITIONS).set(0.0);
                lock(&self.worker).on_revoke(consumer);
            }
            Rebalance::Assign(tpl) => {
                let parts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}/{}", e.topic(), e.partition()))
                    .collect();
                let forwarded = lock(&self.forwarder)
                    .as_ref()
                    .map_or(0, |f| f.forward(consumer, tpl));
                gauge!(m::ASSIGNED_PARTITIONS).set(parts.len() as f64);
                if parts.is_empty() {
                    // Idle until the next rebalance: more replicas than partitions, or a
                    // broker handing out nothing. Say so where alerts look.
                    warn!("no partitions assigned: this replica consumes nothing until the next rebalance");
                } else {
                    info!(partitions = ?parts, forwarded, "partitions assigned");
                }
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

struct RegistryRetry {
    topic: String,
    partition: i32,
    offset: i64,
    resume_at: Instant,
    paused: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Most messages taken from librdkafka in one call (~0.5 ms of pipeline work: rebalances
/// and the clock wait at most that long).
const TAKE_AT_MOST: usize = 1024;

/// How long an idle consumer waits for the next message before looking at the consumer
/// queue (rebalances) and the idle flush again.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// How long a flush waits for the broker to acknowledge its dead letters. Shorter than the
/// producer's `message.timeout.ms` (see [`DeadLetterProducer::new`]), so a flush gives up
/// and backs off (consumption paused) while librdkafka keeps retrying the letters.
const DLQ_ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a stop keeps retrying the last flush before leaving its offsets uncommitted
/// (the batch is then re-read by the next owner): long enough for a few storage attempts,
/// short enough that a stop during an outage still ends.
const SHUTDOWN_FLUSH_DEADLINE: Duration = Duration::from_secs(30);

/// Longest pause between flush attempts before a revocation, so even a short
/// `batch.revoke_flush_timeout_ms` gets more than one attempt.
const REVOKE_RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Bound on rewinding a partition for a registry retry. librdkafka applies the seek on its
/// own thread and normally answers at once; the bound matters only if that thread is stuck.
const REWIND_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the counters and gauges are published: metrics never cost per event.
const METRICS_EVERY: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// librdkafka settings of the ingest consumer.
pub fn consumer_config(config: &IngestConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", &config.kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Eager protocol: a revocation takes every partition, so discarding the whole
        // batch never needs a rewind of partitions we keep.
        .set("partition.assignment.strategy", "roundrobin")
        // librdkafka (≥ 2.4) waits fetch.queue.backoff.ms (default 1 s) before fetching
        // again once its local queue is over its thresholds. Ingest drains that queue in a
        // fraction of a second, then sat idle for the rest: 0.43× → 0.76× of a bare
        // consumer's drain rate with 50 ms (load-tests/RESULTS.md).
        .set("fetch.queue.backoff.ms", "50")
        .set("statistics.interval.ms", "5000")
        // Group timeouts, explicit (kafka.properties overrides them): a member silent for
        // 30 s leaves the group and its partitions move; a consume loop stuck for 5 min
        // (it never is: a flush pauses partitions but keeps polling) is taken out.
        .set("session.timeout.ms", "30000")
        .set("max.poll.interval.ms", "300000");
    if let Some(id) = config.kafka.instance_id() {
        c.set("group.instance.id", id);
    }
    for (k, v) in &config.kafka.properties {
        c.set(k, v);
    }
    c
}

fn producer_config(config: &IngestConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.kafka.brokers);
    for (k, v) in &config.kafka.properties {
        c.set(k, v);
    }
    c
}

fn consume_loop(
    config: IngestConfig,
    store: Arc<dyn Store>,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> Result<IngestReport, IngestError> {
    let resolver: Arc<dyn SchemaResolver> = match &config.schema_registry_url {
        Some(url) => Arc::new(
            crate::registry::RegistryClient::new(url, &config.schema_registry_tls)
                .map_err(IngestError::Registry)?,
        ),
        None => Arc::new(BundledSchemas),
    };
    let kafka = |what| move |error| IngestError::Kafka { what, error };
    let dlq = DeadLetterProducer::new(producer_config(&config), config.kafka.dlq_topic())
        .map_err(kafka("creating the dead-letter producer"))?;
    let worker = Arc::new(Mutex::new(Worker::new(
        &config,
        Codec::new(resolver),
        store,
        dlq,
        rt,
    )));
    let consumer: BaseConsumer<IngestContext> = consumer_config(&config)
        .create_with_context(IngestContext {
            worker: worker.clone(),
            forwarder: Mutex::new(None),
        })
        .map_err(kafka("creating the consumer"))?;
    let queue = MessageQueue::new(&consumer);
    *lock(&consumer.context().forwarder) = Some(queue.forwarder());
    let mut messages = queue.batch();
    consumer
        .subscribe(&[&config.kafka.topic])
        .map_err(kafka("subscribing to the topic"))?;
    info!(topic = %config.kafka.topic, group = %config.kafka.group_id, brokers = %config.kafka.brokers,
          dlq = %config.kafka.dlq_topic(), "ingest consuming");

    let mut last_metrics = Instant::now();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let (paused, until_retry) = {
            let w = lock(&worker);
            (w.paused, w.until_retry(Instant::now()))
        };
        // Never hold the worker across poll: the rebalance callback runs inside it and locks.
        // The consumer queue carries rebalances and errors (messages only if a partition
        // could not be forwarded). It blocks only while paused, until the next flush retry;
        // an error event can end that wait early, which must not bring the retry forward.
        let polled = consumer.poll(if paused { until_retry } else { Duration::ZERO });
        let wait = if paused || polled.is_some() {
            Duration::ZERO
        } else {
            IDLE_WAIT
        };
        let taken = queue.take(&mut messages, TAKE_AT_MOST, wait);
        // One clock read per batch (and after every flush): stale by at most one batch.
        let mut now = Instant::now();
        let mut wall_ms = now_ms();
        let mut w = lock(&worker);
        if (taken > 0 || matches!(polled, Some(Ok(_)))) && w.report.first_message_after_ms.is_none()
        {
            let after = started.elapsed();
            info!(after = ?after, "first message received (group joined, first fetch done)");
            w.report.first_message_after_ms = Some(after.as_millis() as u64);
        }
        let polled_nothing = polled.is_none();
        match polled {
            Some(Ok(msg)) => w.handle(&msg, wall_ms),
            Some(Err(e)) => warn!(error = %e, "consumer error"),
            None => {}
        }
        for index in 0..taken {
            let msg = messages.get(index);
            if let Some(error) = msg.error() {
                warn!(error = %error, topic = msg.topic(), partition = msg.partition(), "consumer error");
                continue;
            }
            if w.awaits_registry_retry(&msg) {
                continue;
            }
            w.handle(&msg, wall_ms);
            w.report.taken_in_batches += 1;
            if !w.paused && w.should_flush(now) {
                w.flush_or_pause(&consumer);
                now = Instant::now();
                wall_ms = now_ms();
            }
        }
        messages.clear();
        w.drive_registry_retry(&consumer);
        let caught_up = taken == 0 && polled_nothing;
        let due = if w.paused {
            w.until_retry(now).is_zero()
        } else {
            w.should_flush(now) || (caught_up && w.idle_flush_due(now))
        };
        if due {
            w.flush_or_pause(&consumer);
            now = Instant::now();
        }
        if now.saturating_duration_since(last_metrics) >= METRICS_EVERY {
            w.publish_metrics();
            last_metrics = now;
        }
    }

    // Graceful stop: flush what we have (bounded), then leave the group.
    {
        let mut w = lock(&worker);
        let deadline = Instant::now() + SHUTDOWN_FLUSH_DEADLINE;
        while !w.batch.is_empty() {
            match w.try_flush(&consumer, CommitMode::Sync) {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    warn!(error = %e, "flush at shutdown failed; retrying");
                    std::thread::sleep(w.backoff);
                }
                Err(e) => {
                    w.report.last_flush_error = Some(e.to_string());
                    error!(error = %e, messages = w.batch.messages,
                           "could not flush at shutdown; offsets left uncommitted, the batch will be re-read");
                    break;
                }
            }
        }
        w.publish_metrics();
    }
    consumer.unsubscribe();
    let report = lock(&worker).report.clone();
    // librdkafka's objects before the client they belong to (leaves the group).
    drop(messages);
    drop(queue);
    drop(consumer);
    info!(report = ?report, "ingest stopped");
    Ok(report)
}

impl Worker {
    fn new(
        config: &IngestConfig,
        codec: Codec,
        store: Arc<dyn Store>,
        dlq: DeadLetterProducer,
        rt: tokio::runtime::Handle,
    ) -> Self {
        let initial_backoff = Duration::from_millis(config.batch.initial_backoff_ms);
        Self {
            pipeline: Pipeline::new(&config.pipeline_config(), codec),
            batch: Batch::default(),
            store,
            dlq,
            rt,
            cfg: config.batch.clone(),
            write_timeout: config.clickhouse.timeout,
            paused: false,
            backoff: initial_backoff,
            retry_at: None,
            report: IngestReport::default(),
            published: PipelineStats::default(),
            dedup_full_warned_at: None,
            registry_retry: None,
            registry_backoff: initial_backoff,
        }
    }

    fn handle(&mut self, msg: &impl ConsumedMessage, now: i64) {
        self.report.messages += 1;
        let payload = msg.payload();
        match self.pipeline.process(payload, now) {
            Outcome::New(row) => self.batch.rows.push(row),
            Outcome::Duplicate => {}
            Outcome::NotADevice(why) => {
                counter!(m::NOT_A_DEVICE, "reason" => why.reason()).increment(1);
            }
            Outcome::Rejected(rejection) if rejection.is_retryable() => {
                // The registry is down: this is not bad data. Leave the offset unrecorded
                // (what came before is flushed and committed as usual), rewind and pause the
                // partition, and read the message again after a backoff.
                self.report.registry_retries += 1;
                counter!(m::REGISTRY_RETRIES).increment(1);
                let retry_in = self.registry_backoff;
                warn!(error = %rejection, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), retry_in = ?retry_in,
                      "schema registry unavailable: pausing the partition and retrying the message (not dead-lettered)");
                self.registry_retry = Some(RegistryRetry {
                    topic: msg.topic().to_string(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                    resume_at: Instant::now() + retry_in,
                    paused: false,
                });
                self.registry_backoff =
                    (retry_in * 2).min(Duration::from_millis(self.cfg.max_backoff_ms));
                return;
            }
            Outcome::Rejected(rejection) => {
                counter!(m::REJECTED, "reason" => rejection.reason()).increment(1);
                let (payload, truncated_from) = crate::dlq::bounded_payload(payload);
                self.batch.dead_letters.push(DeadLetter {
                    key: msg.key().map(<[u8]>::to_vec),
                    payload,
                    truncated_from,
                    headers: msg.header_list(),
                    reason: rejection.reason(),
                    error: rejection.to_string(),
                    source_topic: msg.topic().to_string(),
                    source_partition: msg.partition(),
                    source_offset: msg.offset(),
                    delivery: Default::default(),
                });
            }
        }
        self.batch
            .record_offset(msg.topic(), msg.partition(), msg.offset());
        if self.registry_backoff > Duration::from_millis(self.cfg.initial_backoff_ms)
            && payload.first() == Some(&0)
        {
            // An Avro message got through: the registry (or the cache) serves again.
            self.registry_backoff = Duration::from_millis(self.cfg.initial_backoff_ms);
        }
    }

    /// Whether `msg` comes after a message set aside for the registry on its partition (taken
    /// in the same batch): it is skipped, the rewind reads it again.
    fn awaits_registry_retry(&self, msg: &impl ConsumedMessage) -> bool {
        self.registry_retry.as_ref().is_some_and(|r| {
            r.partition == msg.partition() && r.offset <= msg.offset() && r.topic == msg.topic()
        })
    }

    /// Pauses and rewinds the partition of a message the registry could not serve, and
    /// resumes it once its backoff has passed (the message is then read again).
    fn drive_registry_retry(&mut self, consumer: &BaseConsumer<IngestContext>) {
        let Some(r) = &mut self.registry_retry else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&r.topic, r.partition);
        if !r.paused {
            if let Err(e) = consumer.pause(&tpl) {
                warn!(error = %e, "pause for the registry retry failed");
            }
            if let Err(e) = consumer.seek(
                &r.topic,
                r.partition,
                Offset::Offset(r.offset),
                REWIND_TIMEOUT,
            ) {
                warn!(error = %e, "rewind for the registry retry failed");
            }
            r.paused = true;
        } else if Instant::now() >= r.resume_at {
            if let Err(e) = consumer.resume(&tpl) {
                warn!(error = %e, "resume after the registry retry failed");
            }
            info!(topic = %r.topic, partition = r.partition, offset = r.offset, "retrying the message that needed the schema registry");
            self.registry_retry = None;
        }
    }

    fn should_flush(&self, now: Instant) -> bool {
        !self.batch.is_empty()
            && (self.batch.rows.len() >= self.cfg.max_rows
                || self.batch.dead_letters.len() >= self.cfg.max_rows
                || self.batch.age_exceeds(self.cfg.max_interval(), now))
    }

    /// Nothing more to read right now and the batch is old enough to be worth an insert.
    fn idle_flush_due(&self, now: Instant) -> bool {
        !self.batch.is_empty()
            && self
                .cfg
                .idle_flush()
                .is_some_and(|min_age| self.batch.age_exceeds(min_age, now))
    }

    /// How long until a paused batch's next flush attempt (zero: due now, or not paused
    /// after a failure).
    fn until_retry(&self, now: Instant) -> Duration {
        self.retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    fn flush_or_pause(&mut self, consumer: &BaseConsumer<IngestContext>) {
        // Routine flushes commit asynchronously (rows are already durable; a lost commit
        // only means a harmless re-read); revocation and shutdown commit synchronously.
        match self.try_flush(consumer, CommitMode::Async) {
            Ok(()) => {
                if self.paused {
                    if let Ok(assignment) = consumer.assignment() {
                        if let Err(e) = consumer.resume(&assignment) {
                            warn!(error = %e, "resume failed");
                        }
                    }
                    self.paused = false;
                    gauge!(m::PAUSED).set(0.0);
                    info!("storage is back: batch written, consumption resumed");
                }
                self.backoff = Duration::from_millis(self.cfg.initial_backoff_ms);
                self.retry_at = None;
            }
            Err(e) => {
                self.report.failed_flushes += 1;
                self.report.last_flush_error = Some(e.to_string());
                counter!(m::FLUSH_FAILURES).increment(1);
                if !self.paused {
                    if let Ok(assignment) = consumer.assignment() {
                        if let Err(e) = consumer.pause(&assignment) {
                            warn!(error = %e, "pause failed");
                        }
                    }
                    self.paused = true;
                    gauge!(m::PAUSED).set(1.0);
                }
                warn!(error = %e, retryable = e.is_retryable(), rows = self.batch.rows.len(), retry_in = ?self.backoff,
                      "flush failed: consumption paused until {}", e.blocked_on());
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff =
                    (self.backoff * 2).min(Duration::from_millis(self.cfg.max_backoff_ms));
            }
        }
    }

    /// Dead letters ▶ rows ▶ commit. Each stage runs only after the previous one was
    /// acknowledged; a retry resends the identical rows.
    fn try_flush(
        &mut self,
        consumer: &BaseConsumer<IngestContext>,
        mode: CommitMode,
    ) -> Result<(), FlushError> {
        let started = Instant::now();
        // Letters already acknowledged (a retry after a storage failure) are not resent.
        if !self.batch.dead_letters.is_empty() && !self.batch.dead_letters_acked {
            self.dlq
                .publish_all(&self.batch.dead_letters, DLQ_ACK_TIMEOUT)?;
            self.batch.dead_letters_acked = true;
            let n = self.batch.dead_letters.len() as u64;
            self.report.dead_letters_published += n;
            counter!(m::DLQ_PUBLISHED).increment(n);
        }
        if !self.batch.rows.is_empty() {
            self.write_rows()?;
            let n = self.batch.rows.len() as u64;
            self.report.rows_written += n;
            counter!(m::ROWS_WRITTEN).increment(n);
            self.batch.rows.clear();
        }
        let offsets = self.batch.commit_list();
        if offsets.count() > 0 {
            if let Err(e) = consumer.commit(&offsets, mode) {
                // Rows are durable; an uncommitted offset only means a harmless re-read.
                warn!(error = %e, "offset commit failed after the batch was written; it may be re-read");
            }
        }
        self.report.flushes += 1;
        self.report.last_flush_error = None;
        histogram!(m::FLUSH_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::debug!(elapsed = ?started.elapsed(), messages = self.batch.messages, dead_letters = self.batch.dead_letters.len(), "batch flushed");
        self.batch.clear();
        Ok(())
    }

    /// Writes the batch's rows, waiting at most `clickhouse.timeout`. The rows stay in the
    /// batch either way (a retry resends the identical rows).
    fn write_rows(&mut self) -> Result<(), FlushError> {
        let store = self.store.clone();
        let rows = std::mem::take(&mut self.batch.rows);
        let timeout = self.write_timeout;
        let result = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, store.write_sightings(&rows)).await });
        self.batch.rows = rows;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(FlushError::Storage(e)),
            Err(_) => Err(FlushError::StorageTimeout(timeout)),
        }
    }

    fn on_revoke(&mut self, consumer: &BaseConsumer<IngestContext>) {
        // The partition may move; its committed offset already points at the message.
        self.registry_retry = None;
        if self.batch.is_empty() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(self.cfg.revoke_flush_timeout_ms);
        loop {
            match self.try_flush(consumer, CommitMode::Sync) {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    warn!(error = %e, "flush before revocation failed; retrying");
                    std::thread::sleep(self.backoff.min(REVOKE_RETRY_PAUSE));
                }
                Err(e) => {
                    warn!(error = %e, messages = self.batch.messages,
                          "discarding the unflushed batch on revocation: offsets stay uncommitted, the next owner re-reads it");
                    self.batch.clear();
                    self.pipeline.forget_written();
                    self.report.discarded_batches += 1;
                    self.paused = false;
                    gauge!(m::PAUSED).set(0.0);
                    return;
                }
            }
        }
    }

    fn publish_metrics(&mut self) {
        let s = self.pipeline.stats;
        let p = self.published;
        counter!(m::MESSAGES_CONSUMED).increment(
            s.new + s.duplicates + s.not_a_device + s.rejected
                - (p.new + p.duplicates + p.not_a_device + p.rejected),
        );
        counter!(m::EVENTS_NEW).increment(s.new - p.new);
        counter!(m::DEDUP_HITS).increment(s.duplicates - p.duplicates);
        let through = s.written_through - p.written_through;
        counter!(m::DEDUP_WRITE_THROUGH).increment(through);
        self.published = s;
        self.report.new_devices = s.new;
        self.report.duplicates = s.duplicates;
        self.report.not_a_device = s.not_a_device;
        self.report.rejected = s.rejected;
        let (entries, dedup_bytes) = self.pipeline.memory();
        gauge!(m::DEDUP_ENTRIES).set(entries as f64);
        gauge!(m::DEDUP_BYTES).set(dedup_bytes as f64);
        let quiet = self
            .dedup_full_warned_at
            .is_some_and(|at| at.elapsed() < Duration::from_secs(60));
        if through > 0 && !quiet {
            warn!(
                entries,
                bytes = dedup_bytes,
                written_through = through,
                "dedup cache full: new devices are written without being remembered (counts stay right; storage gets repeats); raise pipeline.dedup_capacity"
            );
            self.dedup_full_warned_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetally_core::{DeviceCategory, Sighting};
    use sitetally_store::{CountFilter, DailyCount, DayRange, SiteCount, StoreError};

    #[test]
    fn group_timeouts_are_explicit_and_static_membership_sets_the_instance_id() {
        let mut config = IngestConfig::default();
        let c = consumer_config(&config);
        assert_eq!(c.get("session.timeout.ms"), Some("30000"));
        assert_eq!(c.get("max.poll.interval.ms"), Some("300000"));
        assert_eq!(
            c.get("group.instance.id"),
            None,
            "dynamic membership by default"
        );
        config.kafka.group_instance_id = Some("ingest-1".into());
        assert_eq!(
            consumer_config(&config).get("group.instance.id"),
            Some("ingest-1")
        );
        config.kafka.group_instance_id = None;
        config.kafka.static_membership = true;
        let from_host = consumer_config(&config)
            .get("group.instance.id")
            .map(str::to_string);
        assert!(from_host.is_some_and(|h| !h.is_empty()), "the host name");
        config
            .kafka
            .properties
            .insert("session.timeout.ms".into(), "10000".into());
        assert_eq!(
            consumer_config(&config).get("session.timeout.ms"),
            Some("10000")
        );
    }

    /// Acknowledges a write after `delay`; ingest's flush calls nothing else.
    struct SlowStore {
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl Store for SlowStore {
        async fn migrate(&self) -> Result<Vec<String>, StoreError> {
            unreachable!()
        }
        async fn write_sightings(&self, _: &[Sighting]) -> Result<(), StoreError> {
            tokio::time::sleep(self.delay).await;
            Ok(())
        }
        async fn site_counts(
            &self,
            _: Option<&str>,
            _: DayRange,
            _: &CountFilter,
        ) -> Result<Vec<SiteCount>, StoreError> {
            unreachable!()
        }
        async fn exact_site_count(
            &self,
            _: &str,
            _: &str,
            _: DayRange,
            _: &CountFilter,
        ) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn daily_counts(
            &self,
            _: &str,
            _: &str,
            _: DayRange,
            _: &CountFilter,
        ) -> Result<Vec<DailyCount>, StoreError> {
            unreachable!()
        }
        async fn ping(&self) -> Result<(), StoreError> {
            unreachable!()
        }
    }

    /// A worker as `consume_loop` builds it from `config`, with one row pending.
    fn worker_with_a_row(
        config: &IngestConfig,
        store: SlowStore,
        rt: &tokio::runtime::Runtime,
    ) -> Worker {
        // A loopback port nobody listens on: the dead-letter producer is never used.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut config = config.clone();
        config.kafka.brokers = closed.to_string();
        let dlq = DeadLetterProducer::new(producer_config(&config), "t.dlq".into()).unwrap();
        let mut w = Worker::new(
            &config,
            Codec::bundled(),
            Arc::new(store),
            dlq,
            rt.handle().clone(),
        );
        w.batch.rows.push(Sighting {
            tenant: "t".into(),
            site: "s".into(),
            day: 20_000,
            device_key: 1,
            device_label: "mac:00:11:22:33:44:55".into(),
            category: DeviceCategory::Ot,
            agent_managed: false,
            sensor: "s1".into(),
            seen_at_ms: 0,
        });
        w
    }

    #[test]
    fn a_paused_batch_is_retried_only_when_its_backoff_has_passed() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let store = SlowStore {
            delay: Duration::ZERO,
        };
        let mut w = worker_with_a_row(&IngestConfig::default(), store, &rt);
        let now = Instant::now();
        assert_eq!(w.until_retry(now), Duration::ZERO, "nothing failed yet");
        // After a failed flush: an early wake-up (an error event ends poll at once) finds
        // the retry not yet due, however often it comes.
        w.paused = true;
        w.retry_at = Some(now + Duration::from_millis(800));
        for early in [0, 1, 100, 799] {
            assert!(!w.until_retry(now + Duration::from_millis(early)).is_zero());
        }
        assert!(w.until_retry(now + Duration::from_millis(800)).is_zero());
        assert_eq!(
            w.until_retry(now + Duration::from_millis(300)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_batch_write_waits_as_long_as_clickhouse_timeout_says() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        // The store answers after 300 ms: within any fixed timeout of seconds, so only the
        // configured 50 ms can make this write time out.
        let slow = || SlowStore {
            delay: Duration::from_millis(300),
        };
        let mut config = IngestConfig::default();
        config.clickhouse.timeout = Duration::from_millis(50);
        let mut w = worker_with_a_row(&config, slow(), &rt);
        let err = w.write_rows().unwrap_err();
        assert!(
            matches!(err, FlushError::StorageTimeout(t) if t == config.clickhouse.timeout),
            "{err}"
        );
        assert!(err.is_retryable());
        assert_eq!(w.batch.rows.len(), 1, "the rows stay for the retry");

        config.clickhouse.timeout = Duration::from_secs(5);
        let mut w = worker_with_a_row(&config, slow(), &rt);
        w.write_rows().unwrap();
    }
}
