//! Error-aware device counts and the [`CountSource`] trait the storage engines implement.
//!
//! Every count says whether it is exact or a sketch estimate and with what one-sigma
//! error. The decision code asks for an exact count whenever an estimate's band
//! (default ±3σ) straddles a boundary it is about to decide on.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sitetally_core::DeviceCategory;

/// How a count was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CountMethod {
    /// Distinct devices counted one by one (sightings table, or a sketch below its exact
    /// threshold).
    Exact,
    /// A sketch estimate with an error bound.
    Estimated,
}

impl CountMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CountMethod::Exact => "EXACT",
            CountMethod::Estimated => "ESTIMATED",
        }
    }
}

/// A distinct-device count with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub value: u64,
    pub method: CountMethod,
    /// One-sigma error in devices (absolute). 0 for exact counts.
    pub sigma: f64,
}

impl Count {
    pub fn exact(value: u64) -> Self {
        Self {
            value,
            method: CountMethod::Exact,
            sigma: 0.0,
        }
    }

    /// An estimate; a zero sigma still counts as an estimate.
    pub fn estimated(value: u64, sigma: f64) -> Self {
        Self {
            value,
            method: CountMethod::Estimated,
            sigma: sigma.max(0.0),
        }
    }

    pub fn is_exact(&self) -> bool {
        self.method == CountMethod::Exact
    }

    /// The error band `[lo, hi]` at `k` sigmas (just the value when exact).
    pub fn band(&self, k: f64) -> (u64, u64) {
        if self.is_exact() {
            return (self.value, self.value);
        }
        let half = (self.sigma * k).ceil();
        let half = if half.is_finite() && half > 0.0 {
            half as u64
        } else {
            0
        };
        (
            self.value.saturating_sub(half),
            self.value.saturating_add(half),
        )
    }

    /// Half-width of the band at `k` sigmas, in whole devices (0 when exact).
    pub fn error_bound(&self, k: f64) -> u64 {
        let (lo, hi) = self.band(k);
        (hi - lo) / 2
    }

    /// Whether the decision "count > boundary" could go either way within the band.
    pub fn straddles(&self, boundary: u64, k: f64) -> bool {
        let (lo, hi) = self.band(k);
        lo <= boundary && boundary < hi
    }

    /// Sum of independent counts: exact only if all are; sigmas add in quadrature.
    pub fn sum<'a>(counts: impl IntoIterator<Item = &'a Count>) -> Count {
        let mut value = 0u64;
        let mut var = 0.0f64;
        let mut exact = true;
        for c in counts {
            value = value.saturating_add(c.value);
            var += c.sigma * c.sigma;
            exact &= c.is_exact();
        }
        Count::measured(exact, value, var.sqrt())
    }

    /// Exact when `exact`, else an estimate with `sigma` (how stores report a count).
    pub fn measured(exact: bool, value: u64, sigma: f64) -> Count {
        if exact {
            Count::exact(value)
        } else {
            Count::estimated(value, sigma)
        }
    }
}

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
            start: now - Duration::days(i64::from(days)),
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
pub struct SiteCount {
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
    async fn site_counts(&self, query: &CountQuery) -> Result<Vec<SiteCount>, CountError>;

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
    pub counts: Vec<SiteCount>,
    /// (tenant, site) → exact count over the configured categories.
    pub exact: std::collections::HashMap<(String, String), u64>,
}

#[async_trait::async_trait]
impl CountSource for StaticCounts {
    async fn site_counts(&self, _query: &CountQuery) -> Result<Vec<SiteCount>, CountError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_and_straddle() {
        let c = Count::estimated(1_000, 16.0);
        assert_eq!(c.band(3.0), (952, 1_048));
        assert!(c.straddles(1_000, 3.0));
        assert!(c.straddles(952, 3.0));
        assert!(!c.straddles(1_048, 3.0));
        assert!(!c.straddles(900, 3.0));
        let e = Count::exact(1_000);
        assert!(!e.straddles(1_000, 3.0));
        assert!(!e.straddles(999, 3.0));
        assert_eq!(e.error_bound(3.0), 0);
    }

    #[test]
    fn sums_in_quadrature() {
        let s = Count::sum(&[Count::estimated(100, 3.0), Count::estimated(200, 4.0)]);
        assert_eq!(s.value, 300);
        assert_eq!(s.sigma, 5.0);
        assert_eq!(s.method, CountMethod::Estimated);
        let e = Count::sum(&[Count::exact(1), Count::exact(2)]);
        assert_eq!(e, Count::exact(3));
    }
}
