//! sitetally-store: all persistence. Sightings and sketches, and the reconciler's memory
//! (alert state, alert log, run history, licences). No other crate writes SQL or files of
//! the data directory.
//!
//! Layout:
//! - [`Store`]       sightings and counts: the trait ingest, the reconciler and the API use;
//! - [`history`]     the reconciler's memory, one trait per table;
//! - [`counts`]      the licensing rules' count source over a [`Store`];
//! - [`clickhouse`]  ClickHouse: numbered migrations, batched RowBinary writer, queries;
//! - [`embedded`]    SQLite store for `sitetally demo` and `--data-dir` (same traits,
//!   nothing to install);
//! - [`tls`]         client TLS (rustls; webpki roots + a CA file, client certificates)
//!   shared by every HTTP client: ClickHouse here, webhooks and the schema registry.

pub mod clickhouse;
pub mod counts;
pub mod embedded;
pub mod history;
pub mod tls;

pub use counts::StoreCounts;
pub use history::{
    AlertLog, AlertStateStore, DecisionHistory, JsonFileStateStore, LicenceTable, MemoryStateStore,
    ReconcilerMemory, ReconcilerTables, RunHistory, StateError,
};

use sitetally_core::{Count, DeviceCategory, Sighting};

/// Storage errors, classified for retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Server unreachable, timed out or overloaded: retry with backoff.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (schema mismatch, bad SQL): retrying will not help.
    #[error("storage rejected the request: {0}")]
    Rejected(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Days since 1970-01-01 UTC, inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: u16,
    pub to: u16,
}

impl DayRange {
    /// The `days` days ending with `last_day` (inclusive).
    pub fn ending(last_day: u16, days: u16) -> Self {
        Self {
            from: last_day.saturating_sub(days.saturating_sub(1)),
            to: last_day,
        }
    }
}

/// Which devices to count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountFilter {
    /// Empty = every category.
    pub categories: Vec<DeviceCategory>,
    /// Count devices an endpoint agent already manages (DESIGN §3 setting).
    pub include_agent_managed: bool,
}

impl CountFilter {
    pub fn all() -> Self {
        Self {
            categories: Vec::new(),
            include_agent_managed: true,
        }
    }
}

/// One site's distinct devices (of the categories a [`CountFilter`] selects), from a
/// sketch: exact below the sketch's exact threshold, an estimate with its sigma above.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteCount {
    pub tenant: String,
    pub site: String,
    pub count: Count,
}

/// A per-day distinct-device count of one site and category.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyCount {
    pub day: u16,
    pub category: DeviceCategory,
    pub count: Count,
}

/// The storage every service talks to. ClickHouse in production, SQLite in the demo.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Creates or upgrades the schema. Idempotent.
    async fn migrate(&self) -> Result<Vec<String>, StoreError>;

    /// Writes one batch. Succeeds only when every row is durable; a retry of the same
    /// batch after a failure must not change any count.
    async fn write_sightings(&self, rows: &[Sighting]) -> Result<(), StoreError>;

    /// Estimated distinct devices per site over `days` (from sketches), optionally for
    /// one tenant.
    async fn site_counts(
        &self,
        tenant: Option<&str>,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Vec<SiteCount>, StoreError>;

    /// Distinct devices of a whole tenant over `days` (sketches merged across its sites, so
    /// a device seen at several sites counts once). `None`: this store cannot merge across
    /// sites, and callers fall back to summing per-site counts.
    async fn tenant_count(
        &self,
        _tenant: &str,
        _days: DayRange,
        _filter: &CountFilter,
    ) -> Result<Option<Count>, StoreError> {
        Ok(None)
    }

    /// Exact distinct devices of a whole tenant over `days`; `None` as for `tenant_count`.
    async fn exact_tenant_count(
        &self,
        _tenant: &str,
        _days: DayRange,
        _filter: &CountFilter,
    ) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Exact distinct devices of one site over `days` (from sightings).
    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<u64, StoreError>;

    /// Estimated distinct devices per day and category of one site, of the devices
    /// `filter` selects (categories, agent-managed ones or not).
    async fn daily_counts(
        &self,
        tenant: &str,
        site: &str,
        days: DayRange,
        filter: &CountFilter,
    ) -> Result<Vec<DailyCount>, StoreError>;

    /// Cheap reachability check for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;
}
