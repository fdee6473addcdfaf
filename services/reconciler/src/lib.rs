//! sitetally-reconciler: the service that compares what ingest counted with what each
//! customer licensed, on a schedule or on demand, and tells the systems that act on
//! overruns. The rules themselves are the pure `sitetally-licensing` crate.
//!
//! Layout:
//! - [`licence_table`] the licence file, and licences kept in the store
//!   (`--import-licences`, `--licences-from-clickhouse`);
//! - [`sink`]       alert delivery: webhooks (signed, retried) and Kafka `tier-alerts`,
//!   a delivery log, concurrent fan-out;
//! - [`reconciler`] the service: `run_once` (decide, alert, deliver) and `run` on an
//!   interval until shutdown;
//! - [`metrics`]    Prometheus series of the service (runs, decisions, alerts);
//! - [`counts_csv`] (re-exported from the licensing crate) the counts CSV of offline runs;
//! - [`offline`]    counts CSV in, table or JSON out (`--counts FILE`);
//! - [`cli`]        [`cli::ReconcileArgs`], the flags of `sitetally reconcile`.

pub mod calendar;
pub mod cli;
/// The counts CSV reader lives in the pure licensing crate (fuzzed there); re-exported
/// where offline runs use it.
pub use sitetally_licensing::counts_csv;
pub mod licence_table;
pub mod metrics;
pub mod offline;
pub mod reconciler;
pub mod sink;

pub use cli::ReconcileArgs;
pub use offline::{run_offline, run_offline_with, FailOn, OutputFormat};
pub use reconciler::{ReconcileError, Reconciler, RunReport};
pub use sink::{AlertSink, DeliveryLog};
pub use sitetally_licensing::{
    Alert, CategoryCount, Count, CountError, CountMethod, CountQuery, CountSource, CountWindow,
    Decision, LicenceBook, Settings, Status, Subject, SubjectState, Tier, TierCatalogue, TierNeed,
};
