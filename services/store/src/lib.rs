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

/// Days since 1970-01-01 UTC, inclusive range; with `since_ms`, the first day counts
/// only the devices seen at or after that instant (the billing window's boundary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: u16,
    pub to: u16,
    /// On day `from`, only sightings with `seen_at >= since_ms` count (full days come
    /// from the sketches, the boundary day from the sightings, which keep `seen_at`).
    pub since_ms: Option<i64>,
}

impl DayRange {
    /// The `days` days ending with `last_day` (inclusive).
    pub fn ending(last_day: u16, days: u16) -> Self {
        Self {
            from: last_day.saturating_sub(days.saturating_sub(1)),
            to: last_day,
            since_ms: None,
        }
    }

    /// The billing window `[start_ms, end_ms]`, exact at its start: the one definition
    /// the reconciler, the API, the CLI and the demo count with (the README's SQL spells
    /// the same). A device counts when a sighting of it falls in the window; on the
    /// boundary day, by the latest of its stored sightings of that day (ingest writes a
    /// device-day once, on its first sighting; README "billing window").
    pub fn window(start_ms: i64, end_ms: i64) -> Self {
        let from = sitetally_core::day_of(start_ms);
        let at_midnight = start_ms.rem_euclid(sitetally_core::MS_PER_DAY) == 0;
        Self {
            from,
            to: sitetally_core::day_of(end_ms),
            since_ms: (!at_midnight).then_some(start_ms),
        }
    }

    /// The days read whole from the sketches: from the day after a boundary day.
    pub fn whole_days(&self) -> (u16, u16) {
        match self.since_ms {
            Some(_) => (self.from.saturating_add(1), self.to),
            None => (self.from, self.to),
        }
    }

    /// The boundary slice as (day, since in seconds): day 0 and 0 (nothing stored that
    /// early) when the range has no boundary, so one SQL text serves both.
    pub fn boundary_seconds(&self) -> (u16, u32) {
        match self.since_ms {
            Some(ms) => (
                self.from,
                (ms.div_euclid(1000)).clamp(0, u32::MAX as i64) as u32,
            ),
            None => (0, 0),
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

#[cfg(test)]
mod tests {
    use super::DayRange;
    use sitetally_core::MS_PER_DAY;

    #[test]
    fn a_window_is_exact_at_its_start_unless_it_starts_at_midnight() {
        let noon = 20_000 * MS_PER_DAY + MS_PER_DAY / 2;
        let w = DayRange::window(noon - 60 * MS_PER_DAY, noon);
        assert_eq!((w.from, w.to), (19_940, 20_000));
        assert_eq!(w.since_ms, Some(noon - 60 * MS_PER_DAY));
        assert_eq!(w.whole_days(), (19_941, 20_000));
        assert_eq!(
            w.boundary_seconds(),
            (19_940, ((noon - 60 * MS_PER_DAY) / 1000) as u32)
        );
        let midnight = 20_000 * MS_PER_DAY;
        let w = DayRange::window(midnight - 60 * MS_PER_DAY, midnight);
        assert_eq!(w.since_ms, None, "a whole first day needs no boundary");
        assert_eq!(w.whole_days(), (19_940, 20_000));
        assert_eq!(w.boundary_seconds(), (0, 0));
    }
}
