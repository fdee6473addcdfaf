//! Shared helpers: licences, counts, and a tiny loopback HTTP receiver.

use chrono::{DateTime, Utc};
use sitetally_core::DeviceCategory;
use sitetally_licensing::count::StaticCounts;
use sitetally_reconciler::{
    CategoryCount, Count, CountError, CountQuery, CountSource, LicenceBook, Settings,
};
use std::sync::{Arc, Mutex};

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// acme: p1 (L), p2 (XL), p3 (M); all paid from 2025-01-01 for a year.
pub fn book() -> LicenceBook {
    LicenceBook::from_toml_str(
        r#"
[[tenants]]
id = "acme"
[[tenants.sites]]
id = "p1"
[[tenants.sites.licences]]
tier = "L"
kind = "paid"
start = "2025-01-01"
[[tenants.sites]]
id = "p2"
[[tenants.sites.licences]]
tier = "XL"
kind = "paid"
start = "2025-01-01"
[[tenants.sites]]
id = "p3"
[[tenants.sites.licences]]
tier = "M"
kind = "paid"
start = "2025-01-01"
"#,
        &Settings::default(),
    )
    .unwrap()
}

/// Counts that tests change between runs; exact counts equal the value.
#[derive(Debug, Default, Clone)]
pub struct MutableCounts {
    pub inner: Arc<Mutex<StaticCounts>>,
    pub exact_calls: Arc<Mutex<usize>>,
}

impl MutableCounts {
    pub fn set(&self, site: &str, value: u64, sigma: f64) {
        let mut g = self.inner.lock().unwrap();
        g.counts.retain(|c| c.site != site);
        let count = if sigma > 0.0 {
            Count::estimated(value, sigma)
        } else {
            Count::exact(value)
        };
        g.counts.push(CategoryCount {
            tenant: "acme".into(),
            site: site.into(),
            category: DeviceCategory::Ot,
            count,
        });
        g.exact.insert(("acme".into(), site.into()), value);
    }

    /// Sets an estimate whose true (exact) value differs.
    pub fn set_estimate(&self, site: &str, estimate: u64, sigma: f64, exact: u64) {
        self.set(site, estimate, sigma);
        self.inner
            .lock()
            .unwrap()
            .exact
            .insert(("acme".into(), site.into()), exact);
    }
}

#[async_trait::async_trait]
impl CountSource for MutableCounts {
    async fn site_counts(&self, q: &CountQuery) -> Result<Vec<CategoryCount>, CountError> {
        let s = self.inner.lock().unwrap().clone();
        s.site_counts(q).await
    }
    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        categories: &[DeviceCategory],
        q: &CountQuery,
    ) -> Result<u64, CountError> {
        *self.exact_calls.lock().unwrap() += 1;
        let s = self.inner.lock().unwrap().clone();
        s.exact_site_count(tenant, site, categories, q).await
    }
}

pub use sitetally_testkit::webhook::receiver;
