//! Drain benchmark: pre-fill a broker (librdkafka's mock cluster in its own process) with
//! simulated discovery events, then let each contender read all of them, one after the
//! other:
//!
//! 1. a bare rdkafka `BaseConsumer` that only reads (the ceiling);
//! 2. sitetally ingest with a store that discards rows (ingest's own cost);
//! 3. sitetally ingest writing to ClickHouse (end to end), with `--clickhouse-url` or
//!    `--clickhouse` (a throwaway server started here, whose CPU is counted too);
//! 4. with `--clickhouse --json-only`: ClickHouse's own Kafka engine + materialized view
//!    computing per site-day sketches from the same topic (CPU = the server's);
//! 5. with `--rust-fetch`: rskafka, a pure-Rust client, reading every message without a
//!    group (how much of a read is librdkafka's own cost);
//! 6. the bare consumer again (drift check).
//!
//! Reports events/s (over the whole run and after the first message) and events per
//! CPU-second for each, and the ratios.
//!
//! `cargo run --release -p sitetally-load-tests --bin drain -- --events 5000000 --partitions 512`
//!
//! librdkafka's mock cluster keeps at most 5 MB or 100,000 message sets per partition and
//! silently drops older ones; the pre-fill spreads messages evenly over the partitions, so
//! 5M events over 512 partitions (≈ 2 MB each) are all kept.

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use sitetally_ingest::IngestConfig;
use sitetally_load_tests::clickhouse_server::ClickHouseServer;
use sitetally_load_tests::{
    cpu_seconds, json_workload, now_ms, workload, Measurement, NullStore, Stopwatch,
};
use sitetally_store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use sitetally_store::Store;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator the `sitetally` binary runs with (see its main.rs), so every contender is
/// measured as shipped.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    /// Messages to pre-fill and drain.
    #[arg(long, default_value_t = 5_000_000)]
    events: u64,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Sites in the simulated workload.
    #[arg(long, default_value_t = 100)]
    sites: usize,
    /// Also run ingest end to end into this ClickHouse (e.g. http://127.0.0.1:8123).
    #[arg(long, conflicts_with = "clickhouse")]
    clickhouse_url: Option<String>,
    /// Start a throwaway ClickHouse server (Debian's clickhouse-server) and run ingest end to
    /// end into it; with --json-only also ClickHouse's own Kafka engine + materialized view
    /// as a peer. CPU-seconds of ClickHouse contenders include the server's.
    #[arg(long)]
    clickhouse: bool,
    /// Pre-fill JSON only, without malformed messages: ClickHouse 18.16's Kafka engine reads
    /// neither Avro nor broken rows, and every contender must read the same topic.
    #[arg(long)]
    json_only: bool,
    /// Partition by key (tenant/site) as sensors do, instead of spreading evenly. The mock
    /// broker then drops what overflows a big site's partition (5 MB each), so fewer
    /// messages are held, but it serves them fast enough that the consumers, not the
    /// broker, are the bottleneck: the CPU-bound comparison.
    #[arg(long)]
    keyed: bool,
    /// Also read every message with a pure-Rust Kafka client (rskafka: fetch requests and
    /// record batches decoded in Rust, no librdkafka, no consumer group), read only: how
    /// much of the bare consumer's CPU is librdkafka's own.
    #[arg(long)]
    rust_fetch: bool,
}

const TOPIC: &str = "device-discoveries";

/// Committed-offset sum of `group`, through one long-lived client (a client per look
/// would cost the broker a connection and a coordinator lookup each time).
struct CommitWatch {
    consumer: BaseConsumer,
    partitions: TopicPartitionList,
}

impl CommitWatch {
    fn new(brokers: &str, group: &str, partitions: i32) -> Self {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        (0..partitions).for_each(|p| {
            tpl.add_partition(TOPIC, p);
        });
        Self {
            consumer,
            partitions: tpl,
        }
    }

    fn total(&self) -> i64 {
        self.consumer
            .committed_offsets(self.partitions.clone(), Duration::from_secs(5))
            .map(|l| {
                l.elements()
                    .iter()
                    .map(|e| {
                        if let Offset::Offset(o) = e.offset() {
                            o
                        } else {
                            0
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Spreads messages evenly over the partitions (keys are kept, but keyed partitioning would
/// put a big site's traffic on one partition, which the mock caps at 5 MB).
fn prefill(
    brokers: &str,
    events: u64,
    sites: usize,
    json_only: bool,
    partitions: i32,
    keyed: bool,
) -> Measurement {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "50")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    let sw = Stopwatch::start("self");
    let mut sent = 0u64;
    let stream = if json_only {
        json_workload(7, sites, now_ms())
    } else {
        workload(7, sites, now_ms())
    };
    for m in stream.take(events as usize) {
        let partition = (sent % partitions as u64) as i32;
        let mut rec = BaseRecord::to(TOPIC).key(&m.key).payload(&m.payload);
        if !keyed {
            rec = rec.partition(partition);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        sent += 1;
        if sent.is_multiple_of(1_000_000) {
            eprintln!("  pre-filled {sent}");
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .expect("pre-fill acknowledged");
    sw.stop(sent)
}

/// Messages the broker actually holds (high − low watermark over all partitions): the
/// mock cluster drops a partition's oldest messages beyond 5 MB / 100k, and a producer
/// can lose some to timeouts, so contenders drain what is there, not what was sent.
/// Returns (messages held, sum of high watermarks = the committed-offset sum when done).
fn available(brokers: &str, partitions: i32) -> (u64, u64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    (0..partitions).fold((0, 0), |(held, high), p| {
        let (lo, hi) = c
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .expect("watermarks");
        (held + (hi - lo) as u64, high + hi as u64)
    })
}

fn bare_consumer(brokers: &str, events: u64, group: &str) -> Measurement {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[TOPIC]).unwrap();
    let sw = Stopwatch::start("self");
    let (mut n, mut bytes) = (0u64, 0usize);
    let mut first = None;
    while n < events {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            use rdkafka::Message;
            first.get_or_insert_with(|| sw.elapsed());
            bytes += m.payload().map_or(0, <[u8]>::len);
            n += 1;
        }
    }
    std::hint::black_box(bytes);
    Measurement {
        first_message: first,
        ..sw.stop(n)
    }
}

/// Reads every partition from its low to its high watermark with rskafka, a few partitions
/// at a time, touching each payload as the bare consumer does.
async fn rust_fetch(brokers: &str, partitions: i32, events: u64) -> anyhow::Result<Measurement> {
    use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
    let client = Arc::new(
        rskafka::client::ClientBuilder::new(vec![brokers.to_string()])
            .build()
            .await?,
    );
    let sw = Stopwatch::start("self");
    let in_flight = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for partition in 0..partitions {
        let (client, in_flight) = (client.clone(), in_flight.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = in_flight.acquire_owned().await?;
            let pc = client
                .partition_client(TOPIC, partition, UnknownTopicHandling::Retry)
                .await?;
            let (mut offset, high) = (
                pc.get_offset(OffsetAt::Earliest).await?,
                pc.get_offset(OffsetAt::Latest).await?,
            );
            let (mut n, mut bytes) = (0u64, 0usize);
            while offset < high {
                let (records, _) = pc.fetch_records(offset, 1..4_000_000, 100).await?;
                for r in &records {
                    bytes += r.record.value.as_ref().map_or(0, Vec::len);
                    offset = offset.max(r.offset + 1);
                    n += 1;
                }
            }
            std::hint::black_box(bytes);
            anyhow::Ok(n)
        }));
    }
    let mut n = 0;
    for task in tasks {
        n += task.await??;
    }
    anyhow::ensure!(n == events, "rskafka read {n} of {events} messages");
    Ok(sw.stop(n))
}

/// Runs ingest until its committed offsets reach `high_watermarks`; `events` is how many
/// messages that is.
async fn ingest(
    brokers: &str,
    events: u64,
    high_watermarks: u64,
    group: &str,
    store: Arc<dyn Store>,
    partitions: i32,
    server_pid: Option<&str>,
) -> Measurement {
    let mut config = IngestConfig::default();
    config.kafka.brokers = brokers.to_string();
    config.kafka.topic = TOPIC.to_string();
    config.kafka.group_id = group.to_string();
    config.batch.max_rows = 100_000;
    config.batch.max_interval_ms = 1_000;
    if let Ok(extra) = std::env::var("DRAIN_INGEST_PROPS") {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            if let Some((k, v)) = kv.split_once('=') {
                config.kafka.properties.insert(k.into(), v.into());
            }
        }
    }
    store.migrate().await.expect("migrate");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server_cpu = server_pid.map(cpu_seconds);
    let sw = Stopwatch::start("self");
    let task = tokio::spawn(sitetally_ingest::consumer::run_with_store(
        config,
        store,
        async {
            let _ = rx.await;
        },
    ));
    let watch = CommitWatch::new(brokers, group, partitions);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if watch.total() as u64 >= high_watermarks {
            break;
        }
    }
    let mut m = sw.stop(events);
    if let (Some(pid), Some(before)) = (server_pid, server_cpu) {
        m.cpu_seconds += cpu_seconds(pid) - before;
    }
    let _ = tx.send(());
    let report = task.await.unwrap().unwrap();
    eprintln!("  ingest report: {report:?}");
    Measurement {
        first_message: report.first_message_after_ms.map(Duration::from_millis),
        ..m
    }
}

/// ClickHouse's own Kafka engine + materialized view computing the same per site-day
/// sketches (uniqCombined of the lowest MAC, else zone + lowest IP) from the same topic.
/// Its consumer group starts at each partition's low watermark (committed up front).
/// CPU-seconds are the ClickHouse server's.
async fn clickhouse_kafka_engine(
    server: &ClickHouseServer,
    brokers: &str,
    events: u64,
    partitions: i32,
) -> anyhow::Result<Measurement> {
    const GROUP: &str = "clickhouse-kafka-engine";
    let start_at: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", GROUP)
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, _) = start_at.fetch_watermarks(TOPIC, p, Duration::from_secs(10))?;
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(low))?;
    }
    start_at.commit(&tpl, rdkafka::consumer::CommitMode::Sync)?;
    drop(start_at);

    // 18.16 lacks RowBinaryWithNamesAndTypes, which the client's validation needs.
    let ch = clickhouse::Client::default()
        .with_url(&server.url)
        .with_validation(false);
    for ddl in [
        "CREATE DATABASE IF NOT EXISTS kpeer".to_string(),
        "CREATE TABLE kpeer.sketch (tenant String, site String, day Date, category String, \
         devices AggregateFunction(uniqCombined, String), messages AggregateFunction(count)) \
         ENGINE = AggregatingMergeTree() ORDER BY (tenant, site, day, category)"
            .to_string(),
    ] {
        ch.query(&ddl).execute().await?;
    }
    let pid = server.pid();
    let sw = Stopwatch::start(&pid);
    for ddl in [
        format!("CREATE TABLE kpeer.queue (tenant String, site String, zone String, macs Array(String), \
                 ips Array(String), category String) ENGINE = Kafka('{brokers}', '{TOPIC}', '{GROUP}', 'JSONEachRow')"),
        "CREATE MATERIALIZED VIEW kpeer.mv TO kpeer.sketch AS SELECT tenant, site, today() AS day, \
         upper(category) AS category, uniqCombinedState(if(notEmpty(macs), \
         arrayReduce('min', arrayMap(m -> lower(replaceRegexpAll(m, '[^0-9A-Fa-f]', '')), macs)), \
         concat(zone, '/', arrayReduce('min', ips)))) AS devices, countState() AS messages \
         FROM kpeer.queue GROUP BY tenant, site, day, category".to_string(),
    ] {
        ch.query(&ddl).execute().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let done: u64 = ch
            .query("SELECT countMerge(messages) FROM kpeer.sketch")
            .fetch_one()
            .await?;
        if done >= events {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the Kafka engine read {done} of {events} messages in 30 min"
        );
    }
    let m = sw.stop(events);
    let devices: u64 = ch.query("SELECT toUInt64(sum(d)) FROM (SELECT uniqCombinedMerge(devices) AS d FROM kpeer.sketch GROUP BY tenant, site)").fetch_one().await?;
    eprintln!("  Kafka engine: {devices} devices summed over sites");
    ch.query("DROP TABLE kpeer.mv").execute().await?;
    ch.query("DROP TABLE kpeer.queue").execute().await?;
    Ok(m)
}

fn row(name: &str, m: &Measurement, ceiling: &Measurement) {
    // The Kafka engine reports no first-message time: "–" rather than NaN.
    let or_dash =
        |v: Option<f64>, fmt: &dyn Fn(f64) -> String| v.map_or_else(|| "–".to_string(), fmt);
    let flowing = m.flowing_events_per_sec();
    println!(
        "| {name} | {} | {:.1} | {} | {:.2} | {:.0} | {} | {:.0} | {:.2}× | {} | {:.2}× |",
        m.events,
        m.wall.as_secs_f64(),
        or_dash(m.first_message.map(|f| f.as_secs_f64()), &|v| format!(
            "{v:.2}"
        )),
        m.cpu_seconds,
        m.events_per_sec(),
        or_dash(flowing, &|v| format!("{v:.0}")),
        m.events_per_cpu_sec(),
        m.events_per_sec() / ceiling.events_per_sec(),
        or_dash(
            flowing
                .zip(ceiling.flowing_events_per_sec())
                .map(|(a, b)| a / b),
            &|v| format!("{v:.2}×")
        ),
        m.events_per_cpu_sec() / ceiling.events_per_cpu_sec()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("SITETALLY_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let exe = std::env::current_exe()?.with_file_name("mock_broker");
    let mut broker = Command::new(&exe)
        .args([
            "--topic",
            TOPIC,
            "--partitions",
            &args.partitions.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!(
                "start {}: {e} (build it: cargo build --release -p sitetally-load-tests)",
                exe.display()
            )
        })?;
    let mut line = String::new();
    BufReader::new(broker.stdout.take().unwrap()).read_line(&mut line)?;
    let brokers = line
        .trim()
        .strip_prefix("bootstrap=")
        .ok_or_else(|| anyhow::anyhow!("mock broker said {line:?}"))?
        .to_string();
    let broker_pid = broker.id().to_string();
    eprintln!(
        "mock broker (pid {broker_pid}) at {brokers}; pre-filling {} events over {} partitions",
        args.events, args.partitions
    );
    let fill = prefill(
        &brokers,
        args.events,
        args.sites,
        args.json_only,
        args.partitions,
        args.keyed,
    );
    eprintln!("  pre-fill: {:.0} events/s", fill.events_per_sec());
    let (held, high_watermarks) = available(&brokers, args.partitions);
    eprintln!("  broker holds {held} of {} sent", args.events);
    assert!(held > 0 && held <= args.events, "watermarks say {held}");
    let events = held;

    let started = Instant::now();
    eprintln!("contender: bare BaseConsumer");
    let bare1 = bare_consumer(&brokers, events, "bare-1");
    eprintln!("contender: ingest (null store)");
    let null = ingest(
        &brokers,
        events,
        high_watermarks,
        "ingest-null",
        Arc::new(NullStore::default()),
        args.partitions,
        None,
    )
    .await;
    let server = if args.clickhouse {
        Some(ClickHouseServer::start()?)
    } else {
        None
    };
    let ch_url = server
        .as_ref()
        .map(|s| s.url.clone())
        .or(args.clickhouse_url.clone());
    let ch = match &ch_url {
        Some(url) => {
            eprintln!("contender: ingest → ClickHouse {url}");
            let store = ClickHouseStore::new(&ClickHouseConfig {
                url: url.clone(),
                database: format!("drain_{}", std::process::id()),
                ..Default::default()
            })
            .expect("TLS settings of a test store");
            let pid = server.as_ref().map(ClickHouseServer::pid);
            Some(
                ingest(
                    &brokers,
                    events,
                    high_watermarks,
                    "ingest-ch",
                    Arc::new(store),
                    args.partitions,
                    pid.as_deref(),
                )
                .await,
            )
        }
        None => None,
    };
    let kafka_engine = match &server {
        Some(server) if args.json_only => {
            eprintln!("contender: ClickHouse Kafka engine + materialized view");
            Some(clickhouse_kafka_engine(server, &brokers, events, args.partitions).await?)
        }
        Some(_) => {
            eprintln!("(the ClickHouse Kafka engine peer needs --json-only: it reads neither Avro nor malformed rows)");
            None
        }
        None => None,
    };
    let rust_fetched = if args.rust_fetch {
        eprintln!("contender: pure-Rust fetch (rskafka, read only)");
        Some(rust_fetch(&brokers, args.partitions, events).await?)
    } else {
        None
    };
    eprintln!("contender: bare BaseConsumer (again, drift check)");
    let bare2 = bare_consumer(&brokers, events, "bare-2");
    drop(broker.stdin.take());
    let _ = broker.wait();

    println!("\nDrain of {events} pre-filled events ({} sent), broker = librdkafka mock cluster in its own process, {} partitions (total {:.0?})\n", args.events, args.partitions, started.elapsed());
    println!("| contender | events | wall s | first message after s | CPU s | events/s | events/s after first message | events/CPU-s | events/s vs bare | after first message vs bare | events/CPU-s vs bare |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    row("bare rdkafka BaseConsumer (read only)", &bare1, &bare1);
    row("sitetally ingest, null store", &null, &bare1);
    if let Some(ch) = &ch {
        let with = if server.is_some() {
            " (CPU incl. the ClickHouse server)"
        } else {
            ""
        };
        row(&format!("sitetally ingest → ClickHouse{with}"), ch, &bare1);
    }
    if let Some(k) = &kafka_engine {
        row(
            "ClickHouse Kafka engine + MV (CPU = the ClickHouse server)",
            k,
            &bare1,
        );
    }
    if let Some(r) = &rust_fetched {
        row("pure-Rust fetch, rskafka (read only, no group)", r, &bare1);
    }
    row("bare rdkafka BaseConsumer (again)", &bare2, &bare1);
    if let (Some(k), Some(r)) = (&kafka_engine, &rust_fetched) {
        println!(
            "\npure-Rust fetch (read only) per CPU-second vs the Kafka engine: {:.2}×",
            r.events_per_cpu_sec() / k.events_per_cpu_sec()
        );
    }
    if let Some(k) = &kafka_engine {
        println!(
            "\nsitetally ingest (null store) per CPU-second vs the Kafka engine: {:.2}×",
            null.events_per_cpu_sec() / k.events_per_cpu_sec()
        );
        if let Some(ch) = &ch {
            println!("sitetally ingest → ClickHouse (both processes) per CPU-second vs the Kafka engine: {:.2}×", ch.events_per_cpu_sec() / k.events_per_cpu_sec());
        }
    }
    Ok(())
}
