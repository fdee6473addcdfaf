//! `sitetally simulate`: produce the simulated stream to a Kafka topic.
//!
//! The producer loop is synchronous (a `ThreadedProducer` fed from one thread, which is
//! what keeps hundreds of thousands of messages per second cheap); [`run_simulation`]
//! runs it on a blocking thread and stops it when its `shutdown` future completes.
//! Producers use `enable.idempotence=true` and `acks=all` (DESIGN §6), so a retried send
//! never duplicates a message and an acknowledged one is on every in-sync replica.

use crate::config::{SimConfig, SizeProfile};
use crate::stream::EventStream;
use crate::truth::GroundTruth;
use crate::world::World;
use crate::SimError;
use clap::builder::RangedU64ValueParser;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Flags of `sitetally simulate` (also usable programmatically: `SimulateArgs::default()`
/// then set fields).
/// A share between 0 and 1 (`0.25`).
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}

#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SimulateArgs {
    /// Kafka bootstrap servers (the same flag and variable on every command; `--brokers`
    /// is an alias).
    #[arg(
        long = "kafka-brokers",
        alias = "brokers",
        value_name = "HOST:PORT,...",
        env = "SITETALLY_KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Topic to produce to (messages keyed by `tenant/site`).
    #[arg(long, default_value = "device-discoveries")]
    pub topic: String,
    /// Seed of the simulated world and stream: same seed, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of sites.
    #[arg(long, default_value_t = 20, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub sites: usize,
    /// Smallest site (devices).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub min_site_size: u32,
    /// Largest site (devices); sizes are mostly small with one site per tier size.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_site_size: u32,
    /// Explicit site sizes, comma-separated (site i gets sizes[i % len]); overrides
    /// --min-site-size/--max-site-size.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub site_sizes: Vec<u32>,
    /// Reports per device per simulated day, each round by another sensor (>= 2).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub reports: u32,
    /// Simulated days; the last is today. Growing sites gain devices day by day.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=366))]
    pub days: u16,
    /// OT sites that grow past their licensed tier (default: one site in ten, at least 1).
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(0..=100_000))]
    pub grow_sites: Option<usize>,
    /// Most sensors per site.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(2..=1_000))]
    pub max_sensors: u32,
    /// Share of messages in Avro (the rest JSON).
    #[arg(long, default_value_t = 0.5, value_parser = parse_fraction)]
    pub avro_fraction: f64,
    /// Share of malformed messages (varied kinds).
    #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
    pub malformed_fraction: f64,
    /// Share of valid reports of non-devices (public IPs, multicast, broadcast).
    #[arg(long, default_value_t = 0.005, value_parser = parse_fraction)]
    pub not_a_device_fraction: f64,
    /// Today's events fall within this window before the start of the run.
    #[arg(long, default_value = "3h", value_parser = humantime::parse_duration)]
    pub recent_window: Duration,
    /// Events per second, 0 for as fast as the broker takes them.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub rate: u64,
    /// Stop after this long (e.g. 20s, 5m). With --duration or --events the stream goes
    /// on after the planned schedule with repeat reports, which do not change the truth;
    /// with neither it stops when the schedule is done.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long)]
    pub events: Option<u64>,
    /// Write the ground truth of what was produced to this JSON file.
    #[arg(long)]
    pub truth_out: Option<PathBuf>,
    /// Extra producer settings, `key=value` (librdkafka names), repeatable.
    #[arg(long = "producer-config", value_parser = parse_key_value)]
    pub producer_config: Vec<(String, String)>,
    /// Timestamps are generated against this instant (epoch ms) instead of the clock.
    #[arg(long, hide = true)]
    pub now_ms: Option<i64>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got {s:?}"))
}

impl Default for SimulateArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SimulateArgs,
        }
        Wrapper::parse_from(["simulate"]).args
    }
}

impl SimulateArgs {
    /// The world and stream settings these flags describe (validated by [`World::new`]).
    pub fn sim_config(&self) -> SimConfig {
        let sizes = if self.site_sizes.is_empty() {
            SizeProfile::Realistic {
                min: self.min_site_size,
                max: self.max_site_size,
            }
        } else {
            SizeProfile::Explicit(self.site_sizes.clone())
        };
        let mut c = SimConfig::new(self.seed, self.sites);
        c.sizes = sizes;
        c.reports_per_device = self.reports;
        c.days = self.days;
        if let Some(g) = self.grow_sites {
            c.grow_sites = g;
        }
        c.max_sensors_per_site = self.max_sensors.max(c.min_sensors_per_site);
        c.avro_fraction = self.avro_fraction;
        c.malformed_fraction = self.malformed_fraction;
        c.not_a_device_fraction = self.not_a_device_fraction;
        c.recent_window_ms = self.recent_window.as_millis().min(i64::MAX as u128) as i64;
        c.endless = self.duration.is_some() || self.events.is_some();
        c
    }

    /// Broker and limit settings of the producer loop.
    pub fn produce_settings(&self) -> ProduceSettings {
        ProduceSettings {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            rate: self.rate,
            duration: self.duration,
            max_events: self.events,
            producer_config: self.producer_config.clone(),
        }
    }
}

/// Where and how fast to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceSettings {
    pub brokers: String,
    pub topic: String,
    /// Events per second; 0 = unlimited.
    pub rate: u64,
    pub duration: Option<Duration>,
    pub max_events: Option<u64>,
    /// Extra librdkafka producer settings (override the defaults).
    pub producer_config: Vec<(String, String)>,
}

/// Why producing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The (finite) stream ended.
    Finished,
    EventLimit,
    Duration,
    Shutdown,
}

/// Result of a simulation run.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// Exact truth of the messages produced (all acknowledged by the broker).
    pub truth: GroundTruth,
    /// Messages sent and acknowledged.
    pub sent: u64,
    pub elapsed: Duration,
    pub stopped: StopReason,
}

/// Counts delivery reports; remembers the first failure.
#[derive(Default)]
struct DeliveryTracker {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Produces `stream` to Kafka until it ends, a limit is reached or `stop` is set; then
/// flushes and checks that every message was acknowledged. Blocking.
pub fn produce(
    stream: &mut EventStream,
    settings: &ProduceSettings,
    stop: &AtomicBool,
) -> Result<SimReport, SimError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "10")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .set("compression.type", "lz4");
    for (k, v) in &settings.producer_config {
        config.set(k, v);
    }
    let producer: ThreadedProducer<DeliveryTracker> =
        config.create_with_context(DeliveryTracker::default())?;

    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut last_log = start;
    let mut logged_sent = 0u64;
    let stopped = loop {
        if stop.load(Ordering::Relaxed) {
            break StopReason::Shutdown;
        }
        if settings.max_events.is_some_and(|max| sent >= max) {
            break StopReason::EventLimit;
        }
        let now = Instant::now();
        if settings.duration.is_some_and(|d| now - start >= d) {
            break StopReason::Duration;
        }
        if settings.rate > 0 {
            let due = start + Duration::from_secs_f64(sent as f64 / settings.rate as f64);
            if due > now + Duration::from_millis(2) {
                // Sleep in short steps so a shutdown is noticed promptly.
                std::thread::sleep((due - now).min(Duration::from_millis(50)));
                continue;
            }
        }
        let Some(msg) = stream.next() else {
            break StopReason::Finished;
        };
        let mut record = BaseRecord::to(&settings.topic)
            .key(&msg.key)
            .payload(&msg.payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(SimError::Kafka(e)),
            }
        }
        sent += 1;
        if last_log.elapsed() >= Duration::from_secs(2) {
            let rate = (sent - logged_sent) as f64 / last_log.elapsed().as_secs_f64();
            info!(
                sent,
                rate = rate.round() as u64,
                schedule_complete = stream.schedule_complete(),
                "simulating"
            );
            last_log = Instant::now();
            logged_sent = sent;
        }
    };
    producer.flush(Duration::from_secs(120))?;
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first_error = ctx
            .first_error
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        return Err(SimError::Delivery {
            sent,
            failed,
            first_error,
        });
    }
    let elapsed = start.elapsed();
    let truth = stream.truth();
    info!(
        sent,
        elapsed_ms = elapsed.as_millis() as u64,
        valid = truth.valid,
        malformed = truth.malformed_total(),
        not_a_device = truth.not_a_device,
        devices = truth.total_devices(),
        ?stopped,
        "simulation produced"
    );
    Ok(SimReport {
        truth,
        sent,
        elapsed,
        stopped,
    })
}

/// Builds the world from `args`, produces its stream until a limit or `shutdown`, writes
/// `--truth-out` if asked and returns the report with the ground truth.
pub async fn run_simulation(
    args: SimulateArgs,
    shutdown: impl Future<Output = ()>,
) -> Result<SimReport, SimError> {
    let world = Arc::new(World::new(args.sim_config())?);
    let now_ms = args.now_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    });
    info!(
        sites = world.sites.len(),
        devices = world.devices.len(),
        planned_messages = world.planned_messages(),
        grown_sites = world.grown_sites().len(),
        brokers = %args.brokers,
        topic = %args.topic,
        "simulated world built"
    );
    let settings = args.produce_settings();
    let stop = Arc::new(AtomicBool::new(false));
    let mut task = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || produce(&mut EventStream::new(world, now_ms), &settings, &stop)
    });
    tokio::pin!(shutdown);
    let joined = tokio::select! {
        r = &mut task => r,
        () = &mut shutdown => {
            info!("shutdown requested: stopping the simulator");
            stop.store(true, Ordering::Relaxed);
            task.await
        }
    };
    let report = joined.map_err(|e| SimError::Task(e.to_string()))??;
    if let Some(path) = &args.truth_out {
        report
            .truth
            .write_json(path)
            .map_err(|source| SimError::TruthFile {
                path: path.clone(),
                source,
            })?;
        info!(path = %path.display(), "ground truth written");
    }
    if report.stopped == StopReason::Shutdown {
        warn!(
            sent = report.sent,
            "simulation stopped early; the truth covers what was sent"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rdkafka::mocking::MockCluster;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn flags_map_to_the_simulator_settings() {
        let cli = Cli::parse_from([
            "simulate",
            "--seed",
            "7",
            "--sites",
            "12",
            "--site-sizes",
            "5,300,2000",
            "--days",
            "4",
            "--grow-sites",
            "3",
            "--rate",
            "5000",
            "--duration",
            "20s",
            "--malformed-fraction",
            "0.02",
            "--producer-config",
            "linger.ms=5",
            "--truth-out",
            "/tmp/t.json",
        ]);
        let c = cli.args.sim_config();
        assert_eq!((c.seed, c.sites, c.days, c.grow_sites), (7, 12, 4, 3));
        assert_eq!(c.sizes, SizeProfile::Explicit(vec![5, 300, 2000]));
        assert!(c.endless, "a duration keeps the stream going");
        assert_eq!(c.malformed_fraction, 0.02);
        let p = cli.args.produce_settings();
        assert_eq!((p.rate, p.duration), (5000, Some(Duration::from_secs(20))));
        assert_eq!(
            p.producer_config,
            vec![("linger.ms".to_string(), "5".to_string())]
        );

        let d = SimulateArgs::default();
        assert_eq!(
            (d.brokers.as_str(), d.topic.as_str()),
            ("127.0.0.1:9092", "device-discoveries")
        );
        assert_eq!(d.sim_config().malformed_fraction, 0.01);
        assert!(
            !d.sim_config().endless,
            "no limit: the planned schedule once"
        );
        assert_eq!(d.sim_config().grow_sites, 2);
        assert!(Cli::try_parse_from(["simulate", "--producer-config", "nonsense"]).is_err());
    }

    #[test]
    fn numeric_flags_are_bounded() {
        for bad in [
            ["--sites", "100000000000"],
            ["--sites", "0"],
            ["--max-site-size", "4000000000"],
            ["--reports", "1"],
            ["--days", "5000"],
            ["--malformed-fraction", "1.5"],
            ["--avro-fraction", "NaN"],
            ["--rate", "1000000000000"],
        ] {
            let e = Cli::try_parse_from(["simulate", bad[0], bad[1]])
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
        }
    }

    fn small(brokers: String, topic: &str) -> SimulateArgs {
        SimulateArgs {
            brokers,
            topic: topic.into(),
            sites: 3,
            site_sizes: vec![20, 40, 60],
            now_ms: Some(1_795_424_400_000),
            ..SimulateArgs::default()
        }
    }

    // In-process mock cluster (librdkafka's), not a real broker: checks the producer loop,
    // limits, delivery accounting and the truth file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn produces_the_schedule_and_honours_limits() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("sim", 2, 1).unwrap();
        let dir = std::env::temp_dir().join(format!("sim-truth-{}.json", std::process::id()));

        let mut args = small(cluster.bootstrap_servers(), "sim");
        args.truth_out = Some(dir.clone());
        let report = run_simulation(args, std::future::pending()).await.unwrap();
        assert_eq!(report.stopped, StopReason::Finished);
        assert_eq!(report.sent, report.truth.messages);
        assert_eq!(
            report.truth.total_devices(),
            report
                .truth
                .sites
                .iter()
                .map(|s| s.planned_devices)
                .sum::<u64>()
        );
        assert_eq!(GroundTruth::read_json(&dir).unwrap(), report.truth);
        std::fs::remove_file(&dir).ok();

        let mut args = small(cluster.bootstrap_servers(), "sim");
        args.events = Some(1_000);
        args.rate = 20_000;
        let report = run_simulation(args, std::future::pending()).await.unwrap();
        assert_eq!(
            (report.stopped, report.sent, report.truth.messages),
            (StopReason::EventLimit, 1_000, 1_000)
        );
        assert!(
            report.elapsed >= Duration::from_millis(45),
            "rate limit: {:?}",
            report.elapsed
        );

        let mut args = small(cluster.bootstrap_servers(), "sim");
        args.rate = 1_000;
        args.duration = Some(Duration::from_secs(60));
        let report = run_simulation(args, tokio::time::sleep(Duration::from_millis(300)))
            .await
            .unwrap();
        assert_eq!(report.stopped, StopReason::Shutdown);
        assert!(report.sent > 0 && report.sent < 2_000, "{}", report.sent);
        assert_eq!(report.sent, report.truth.messages);
    }

    #[tokio::test]
    async fn bad_settings_fail_before_connecting() {
        let mut args = small("127.0.0.1:1".into(), "sim");
        args.reports = 1;
        match run_simulation(args, std::future::pending()).await {
            Err(SimError::Config { field, .. }) => assert_eq!(field, "reports_per_device"),
            other => panic!("{other:?}"),
        }
    }
}
