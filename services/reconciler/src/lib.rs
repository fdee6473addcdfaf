//! sitetally-reconciler: compares what ingest counted with what each customer licensed,
//! decides per site and per tenant, and tells the systems that act on overruns.
//!
//! Layout:
//! - [`tier`]       tiers (XS..3XL) and the tier catalogue: sizes, the smallest tier
//!   covering a count, stacked XL vs 2XL/3XL above 5,000 devices;
//! - [`settings`]   billing windows, thresholds and one setting per contradiction in the
//!   licensing documents, each with its documented default;
//! - [`licence`]    tenants, sites, OT licences, Enterprise IoT coverage, legacy plans,
//!   and the validated TOML/JSON licence file;
//! - [`licence_table`] licences stored in ClickHouse (`--import-licences`, `--licences-from-clickhouse`);
//! - [`count`]      error-aware counts (exact or estimated ± sigma) and the
//!   [`count::CountSource`] trait storage implements;
//! - [`decision`]   pure decisions: status of a site / tenant for a count at a time;
//! - [`engine`]     runs decisions over all subjects, fetching exact counts when an
//!   estimate's band straddles a boundary;
//! - [`alert`]      alerts on transitions, idempotency keys, JSON/Avro encodings, and
//!   the [`alert::AlertStateStore`] (memory, JSON file) behind restarts;
//! - [`history`]    alert state, alert log and run history in ClickHouse;
//! - [`sink`]       alert delivery: webhooks (signed, retried) and Kafka `tier-alerts`,
//!   a delivery log, concurrent fan-out;
//! - [`reconciler`] the service: `run_once` (decide, alert, deliver) and `run` on an
//!   interval until shutdown;
//! - [`offline`]    counts CSV in, table or JSON out (`--counts FILE`);
//! - [`cli`]        [`cli::ReconcileArgs`], the flags of `sitetally reconcile`.

pub mod alert;
pub mod cli;
pub mod count;
pub mod decision;
pub mod engine;
pub mod history;
pub mod licence;
pub mod licence_table;
pub mod offline;
pub mod reconciler;
pub mod settings;
pub mod sink;
pub mod store_source;
pub mod tier;

pub use alert::{Alert, AlertStateStore, JsonFileStateStore, MemoryStateStore, SubjectState};
pub use cli::ReconcileArgs;
pub use count::{Count, CountError, CountMethod, CountQuery, CountSource, CountWindow, SiteCount};
pub use decision::{Decision, Status, Subject};
pub use licence::LicenceBook;
pub use offline::{run_offline, run_offline_with, FailOn, OutputFormat};
pub use reconciler::{ReconcileError, Reconciler, RunReport};
pub use settings::Settings;
pub use sink::{AlertSink, DeliveryLog};
pub use tier::{Tier, TierCatalogue, TierNeed};
