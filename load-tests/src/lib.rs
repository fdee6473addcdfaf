//! Shared pieces of the load tests: CPU accounting from /proc, workloads from the sensor
//! simulator, and a store that discards rows (to separate ingest's cost from storage's).

pub mod clickhouse_server;

use sitetally_core::Sighting;
use sitetally_sensor_sim::{EventStream, SimConfig, SizeProfile, World};
use sitetally_store::{CountFilter, DailyCount, DayRange, SiteCount, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) consumed so far by process `pid` ("self" for us),
/// including all its threads.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Wall time and CPU seconds of a measured section.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub events: u64,
    pub wall: Duration,
    pub cpu_seconds: f64,
    /// When the first message arrived (group join + first fetch), if known.
    pub first_message: Option<Duration>,
}

impl Measurement {
    /// Events per second once messages flowed (wall time after the first message).
    pub fn flowing_events_per_sec(&self) -> Option<f64> {
        let f = self.first_message?;
        Some(self.events as f64 / (self.wall.saturating_sub(f)).as_secs_f64().max(1e-9))
    }
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.wall.as_secs_f64()
    }
    pub fn events_per_cpu_sec(&self) -> f64 {
        self.events as f64 / self.cpu_seconds.max(1e-9)
    }
}

pub struct Stopwatch {
    start: Instant,
    cpu: f64,
    pid: String,
}

impl Stopwatch {
    pub fn start(pid: &str) -> Self {
        Self {
            start: Instant::now(),
            cpu: cpu_seconds(pid),
            pid: pid.to_string(),
        }
    }
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
    pub fn stop(&self, events: u64) -> Measurement {
        Measurement {
            events,
            wall: self.start.elapsed(),
            cpu_seconds: cpu_seconds(&self.pid) - self.cpu,
            first_message: None,
        }
    }
}

/// The simulator's realistic workload (100 sites of 5..20,000 devices by default),
/// endless so any number of messages can be drawn; repeats are what sensors really send.
pub fn workload(seed: u64, sites: usize, now_ms: i64) -> EventStream {
    stream(realistic(seed, sites), now_ms)
}

fn realistic(seed: u64, sites: usize) -> SimConfig {
    let mut c = SimConfig::new(seed, sites);
    c.sizes = SizeProfile::Realistic {
        min: 5,
        max: 20_000,
    };
    c.endless = true;
    c
}

fn stream(c: SimConfig, now_ms: i64) -> EventStream {
    EventStream::new(Arc::new(World::new(c).expect("valid workload")), now_ms)
}

/// The same world as [`workload`], JSON only and without malformed messages (what
/// ClickHouse 18.16's Kafka engine can read).
pub fn json_workload(seed: u64, sites: usize, now_ms: i64) -> EventStream {
    let mut c = realistic(seed, sites);
    c.avro_fraction = 0.0;
    c.malformed_fraction = 0.0;
    stream(c, now_ms)
}

/// A store that acknowledges and drops rows: measures ingest without storage cost.
#[derive(Default)]
pub struct NullStore {
    pub rows: AtomicU64,
}

#[async_trait::async_trait]
impl Store for NullStore {
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![])
    }
    async fn write_sightings(&self, rows: &[Sighting]) -> Result<(), StoreError> {
        self.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn site_counts(
        &self,
        _: Option<&str>,
        _: DayRange,
        _: &CountFilter,
    ) -> Result<Vec<SiteCount>, StoreError> {
        Ok(vec![])
    }
    async fn exact_site_count(
        &self,
        _: &str,
        _: &str,
        _: DayRange,
        _: &CountFilter,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
    async fn daily_counts(
        &self,
        _: &str,
        _: &str,
        _: DayRange,
        _: &CountFilter,
    ) -> Result<Vec<DailyCount>, StoreError> {
        Ok(vec![])
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
