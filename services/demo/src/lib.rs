//! sitetally-demo: `sitetally demo`, the whole pipeline in one process with nothing to
//! install (DESIGN §1 "Embedded default").
//!
//! The real code paths run unchanged: the sensor simulator's Kafka producer and ingest's
//! Kafka consumer talk to librdkafka's in-process Kafka-protocol cluster; ingest writes to
//! the embedded SQLite store in `--data-dir`; the reconciler reads counts from that store
//! through the same `CountSource` it uses on ClickHouse.
//!
//! Layout:
//! - [`broker`]   the in-process mock cluster (kept on its own thread for the whole run)
//!   and a read-only view of how far ingest has committed;
//! - [`licences`] the licence book the demo reconciles against, generated from the
//!   simulated world's licences (written to `--data-dir/licences.json`);
//! - [`summary`]  the end-of-run table / JSON per site: counted vs true devices, tier,
//!   status;
//! - [`progress`] the live display on stderr;
//! - [`api`]      the HTTP API and dashboard (`sitetally-api`) on `127.0.0.1:--port`
//!   while the demo runs;
//! - [`run`]      wiring: broker ▶ simulator ▶ ingest ▶ store ▶ reconciler, shutdown.

pub mod api;
pub mod broker;
pub mod licences;
pub mod progress;
pub mod run;
pub mod summary;

pub use run::run;
pub use summary::{DemoSummary, SiteRow};

use std::path::PathBuf;
use std::time::Duration;

/// The long `--help` text of `sitetally demo`.
pub const LONG_ABOUT: &str = "\
Run the whole pipeline in one process with simulated sensors: nothing to install.

Starts an in-process Kafka-protocol broker (librdkafka's mock cluster), simulated sensors \
producing to it (tenants with OT sites of every tier size, Enterprise IoT fleets, sites \
growing past their licensed tier over the simulated days, a trickle of malformed \
messages), the ingest consumer writing to an embedded store in --data-dir, and the \
reconciler checking counts against a licence book generated from the simulated world \
(--data-dir/licences.json) and raising tier alerts. While it runs, the HTTP API and \
dashboard are served without authentication on http://127.0.0.1:--port/ (--port 0 picks \
a free port; the log names it).

Shows live progress on stderr. When --duration is over (or on Ctrl-C) the sensors stop, \
the demo waits until ingest has committed everything they sent, reconciles once more and \
prints one line per site on stdout: devices counted (exact, or estimated ± 3 sigma), the \
simulator's true count, the licensed tier and the reconciler's status.

Run it again with the same --data-dir to continue where the last run stopped. To replay \
the decisions later: sitetally reconcile --data-dir DIR --licences DIR/licences.json --once

For a clean terminal (progress line and summary only) add --log warn.

Example: sitetally demo --duration 30s --sites 20 --seed 7";

/// Flags of `sitetally demo` (see [`LONG_ABOUT`]); `DemoArgs::default()` for programs.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct DemoArgs {
    /// How long the simulated sensors produce (e.g. 20s, 2m). The summary follows once
    /// ingest has caught up. The planned schedule (every device of every simulated day)
    /// comes first; afterwards sensors keep re-reporting known devices.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Number of simulated sites, spread over tenants of five sites each.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub sites: usize,

    /// Events per second the simulated sensors send (0 = as fast as possible).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub rate: u64,

    /// Seed of the simulated world and traffic: same seed, same sites and devices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Directory of the embedded store, the alert state and the generated licence file.
    /// A second run on the same directory continues where the first stopped.
    #[arg(long, value_name = "DIR", default_value = "./sitetally-data")]
    pub data_dir: PathBuf,

    /// Port on 127.0.0.1 of the HTTP API and dashboard, served (without authentication,
    /// loopback only) while the demo runs. 0 picks a free port (logged).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,

    /// Summary format on stdout: a table for people, or JSON for scripts and tests.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    pub format: SummaryFormat,

    /// Simulated days of traffic (the last is today); growing sites gain devices every
    /// day until they are past their licensed tier.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=60))]
    pub days: u16,

    /// Largest simulated site in devices. One site of every tier size up to it is
    /// simulated; sites above 8,192 devices are counted with HyperLogLog (± error).
    #[arg(long, default_value_t = 6_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub max_site_size: u32,

    /// Time between reconciliation runs while the demo runs (one more runs at the end).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = humantime::parse_duration)]
    pub reconcile_every: Duration,

    /// After producing stops, how long to wait at most for ingest to commit everything
    /// produced before summarising anyway (the summary then says it is incomplete).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

impl Default for DemoArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: DemoArgs,
        }
        Wrapper::parse_from(["demo"]).args
    }
}

/// Output format of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    Table,
    Json,
}

/// Why the demo could not run. Only broker and storage hiccups are worth a retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A flag is out of range; names it.
    #[error("invalid --{flag}: {reason}")]
    Config { flag: &'static str, reason: String },
    /// The in-process broker could not be started or queried.
    #[error("in-process broker: {0}")]
    Broker(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Store(#[from] sitetally_store::StoreError),
    #[error("simulator: {0}")]
    Sim(#[from] sitetally_sensor_sim::SimError),
    #[error("ingest: {0}")]
    Ingest(String),
    #[error("reconciler: {0}")]
    Reconcile(#[from] sitetally_reconciler::ReconcileError),
    #[error("licence book: {0}")]
    Licences(#[from] sitetally_licensing::licence::LicenceError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A task of the demo panicked or was cancelled.
    #[error("demo task failed: {0}")]
    Task(String),
}

impl DemoError {
    pub fn is_retryable(&self) -> bool {
        match self {
            DemoError::Broker(_) => true,
            DemoError::Store(e) => e.is_retryable(),
            DemoError::Sim(e) => e.is_retryable(),
            DemoError::Reconcile(e) => e.is_retryable(),
            _ => false,
        }
    }
}
