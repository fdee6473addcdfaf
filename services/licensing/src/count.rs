//! Error-aware device counts and the [`CountSource`] trait the storage engines implement.
//!
//! Every count says whether it is exact or a sketch estimate and with what one-sigma
//! error. The decision code asks for an exact count whenever an estimate's band
//! (default ±3σ) straddles a boundary it is about to decide on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use sitetally_core::count::{Count, CountMethod};
use sitetally_core::DeviceCategory;

/// The largest device count the rules decide on, per site or tenant: a billion devices.
/// Larger counts (and catalogue sizes) are input errors: with them a tier quantity, an
/// E5 coverage or a rounded total could stop being representable, and no real site
/// comes within orders of magnitude of it.
pub const MAX_DEVICES: u64 = 1_000_000_000;

/// The billing window `[start, end)` a count covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl CountWindow {
    /// The `days` days ending at `now`.
    pub fn ending(now: DateTime<Utc>, days: u32) -> Self {
        Self {
            start: crate::time::minus_days(now, days),
            end: now,
        }
    }

    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days()
    }
}

/// What to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountQuery {
    pub window: CountWindow,
    /// Count endpoints already managed by an endpoint agent (a setting; default true).
    pub include_agent_managed: bool,
}

/// One site's distinct devices of one category over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryCount {
    pub tenant: String,
    pub site: String,
    pub category: DeviceCategory,
    pub count: Count,
}

/// Why counts could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CountError {
    /// Storage down or slow: try again later.
    #[error("count source unavailable: {0}")]
    Unavailable(String),
    /// The source cannot answer this question at all (e.g. no exact counts offline).
    #[error("count source cannot answer: {0}")]
    Unsupported(String),
    /// A count the rules cannot decide on: above [`MAX_DEVICES`], or a sum that
    /// overflows.
    #[error("{0}")]
    OutOfRange(String),
}

impl CountError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CountError::Unavailable(_))
    }
}

/// Where counts come from: ClickHouse (sketch states + sightings), the embedded store,
/// or a CSV file offline.
#[async_trait::async_trait]
pub trait CountSource: Send + Sync {
    /// Per site and category distinct devices over the window, usually estimates.
    async fn site_counts(&self, query: &CountQuery) -> Result<Vec<CategoryCount>, CountError>;

    /// Exact distinct devices of one site over the window, counting a device seen in
    /// several of `categories` once. Asked only when an estimate is too close to a
    /// boundary to decide on.
    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        categories: &[DeviceCategory],
        query: &CountQuery,
    ) -> Result<u64, CountError>;

    /// Distinct devices of a whole tenant in `categories` (a device seen at several sites
    /// once). `None`: the source only knows per-site counts, and the engine sums them.
    async fn tenant_count(
        &self,
        _tenant: &str,
        _categories: &[DeviceCategory],
        _query: &CountQuery,
    ) -> Result<Option<Count>, CountError> {
        Ok(None)
    }

    /// Exact tenant-wide distinct devices; `None` as for `tenant_count`.
    async fn exact_tenant_count(
        &self,
        _tenant: &str,
        _categories: &[DeviceCategory],
        _query: &CountQuery,
    ) -> Result<Option<u64>, CountError> {
        Ok(None)
    }
}

/// A fixed set of counts (tests, offline CSV). Exact counts come from `exact` when
/// present; otherwise the source answers [`CountError::Unsupported`].
#[derive(Debug, Clone, Default)]
pub struct StaticCounts {
    pub counts: Vec<CategoryCount>,
    /// (tenant, site) → exact count over the configured categories.
    pub exact: std::collections::HashMap<(String, String), u64>,
}

#[async_trait::async_trait]
impl CountSource for StaticCounts {
    async fn site_counts(&self, _query: &CountQuery) -> Result<Vec<CategoryCount>, CountError> {
        Ok(self.counts.clone())
    }

    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        _categories: &[DeviceCategory],
        _query: &CountQuery,
    ) -> Result<u64, CountError> {
        self.exact
            .get(&(tenant.to_string(), site.to_string()))
            .copied()
            .ok_or_else(|| CountError::Unsupported(format!("no exact count for {tenant}/{site}")))
    }
}
