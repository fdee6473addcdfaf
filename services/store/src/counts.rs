//! The licensing rules' [`CountSource`] over any [`Store`]: ClickHouse in production, the
//! embedded store in the demo. Estimates come from sketch states, exact counts from
//! sightings.

use crate::{CountFilter, DayRange, Store, StoreError};
use sitetally_core::DeviceCategory;
use sitetally_licensing::count::{CategoryCount, Count, CountError, CountQuery, CountSource};
use std::sync::Arc;

pub struct StoreCounts {
    store: Arc<dyn Store>,
    /// Only this tenant's sites (the API decides per tenant on request).
    tenant: Option<String>,
}

impl StoreCounts {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            tenant: None,
        }
    }

    /// Counts of one tenant's sites only.
    pub fn for_tenant(store: Arc<dyn Store>, tenant: &str) -> Self {
        Self {
            store,
            tenant: Some(tenant.to_string()),
        }
    }
}

/// The store's day range of a count window: exact at the window's start.
pub fn window_days(query: &CountQuery) -> DayRange {
    DayRange::window(
        query.window.start.timestamp_millis(),
        query.window.end.timestamp_millis(),
    )
}

/// The store filter of a count query over `categories`.
fn filter(categories: &[DeviceCategory], query: &CountQuery) -> CountFilter {
    CountFilter {
        categories: categories.to_vec(),
        include_agent_managed: query.include_agent_managed,
    }
}

fn unavailable(e: StoreError) -> CountError {
    if e.is_retryable() {
        CountError::Unavailable(e.to_string())
    } else {
        CountError::Unsupported(e.to_string())
    }
}

#[async_trait::async_trait]
impl CountSource for StoreCounts {
    async fn site_counts(&self, query: &CountQuery) -> Result<Vec<CategoryCount>, CountError> {
        let mut out = Vec::new();
        for category in DeviceCategory::ALL {
            let filter = filter(&[category], query);
            for c in self
                .store
                .site_counts(self.tenant.as_deref(), window_days(query), &filter)
                .await
                .map_err(unavailable)?
            {
                let count = c.count;
                out.push(CategoryCount {
                    tenant: c.tenant,
                    site: c.site,
                    category,
                    count,
                });
            }
        }
        Ok(out)
    }

    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        categories: &[DeviceCategory],
        query: &CountQuery,
    ) -> Result<u64, CountError> {
        let filter = filter(categories, query);
        self.store
            .exact_site_count(tenant, site, window_days(query), &filter)
            .await
            .map_err(unavailable)
    }

    async fn tenant_count(
        &self,
        tenant: &str,
        categories: &[DeviceCategory],
        query: &CountQuery,
    ) -> Result<Option<Count>, CountError> {
        let filter = filter(categories, query);
        let c = self
            .store
            .tenant_count(tenant, window_days(query), &filter)
            .await
            .map_err(unavailable)?;
        Ok(c)
    }

    async fn exact_tenant_count(
        &self,
        tenant: &str,
        categories: &[DeviceCategory],
        query: &CountQuery,
    ) -> Result<Option<u64>, CountError> {
        let filter = filter(categories, query);
        self.store
            .exact_tenant_count(tenant, window_days(query), &filter)
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;
    use sitetally_core::Sighting;
    use sitetally_licensing::count::CountWindow;

    /// Device `k` of site t/s, seen at `at_ms`.
    fn sighting(k: u64, category: DeviceCategory, at_ms: i64) -> Sighting {
        Sighting {
            tenant: "t".into(),
            site: "s".into(),
            day: sitetally_core::day_of(at_ms),
            device_key: xxhash_rust::xxh3::xxh3_64(&k.to_le_bytes()),
            device_label: format!("d{k}"),
            category,
            agent_managed: false,
            sensor: "x".into(),
            seen_at_ms: at_ms,
        }
    }

    /// Counts over an embedded store holding `rows` (keep the directory alive).
    async fn counts_of(rows: &[Sighting]) -> (StoreCounts, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.migrate().await.unwrap();
        store.write_sightings(rows).await.unwrap();
        (StoreCounts::new(Arc::new(store)), dir)
    }

    /// The OT query of the reconciler and the API: 60 days ending at `now`.
    fn sixty_days_to(now: chrono::DateTime<chrono::Utc>) -> CountQuery {
        CountQuery {
            window: CountWindow::ending(now, 60),
            include_agent_managed: true,
        }
    }

    #[tokio::test]
    async fn counts_per_category_and_exact_from_the_embedded_store() {
        let now = chrono::Utc::now();
        let rows: Vec<Sighting> = (0..30u64)
            .map(|k| {
                let category = if k < 10 {
                    DeviceCategory::Iot
                } else {
                    DeviceCategory::Ot
                };
                sighting(k, category, now.timestamp_millis())
            })
            .collect();
        let (source, _dir) = counts_of(&rows).await;
        let q = sixty_days_to(now);
        let counts = source.site_counts(&q).await.unwrap();
        let get = |c| {
            counts
                .iter()
                .find(|s| s.category == c)
                .map(|s| s.count.value)
        };
        assert_eq!(get(DeviceCategory::Iot), Some(10));
        assert_eq!(get(DeviceCategory::Ot), Some(20));
        assert_eq!(
            source
                .exact_site_count("t", "s", &[DeviceCategory::Iot, DeviceCategory::Ot], &q)
                .await
                .unwrap(),
            30
        );
    }

    /// Issue 13 end to end: the reconciler's and the API's 60-day `CountWindow` counts a
    /// device seen 59 d 23 h before now and not one seen 60 d 1 h before, the same day.
    #[tokio::test]
    async fn the_count_window_is_exact_at_its_start_instant() {
        let hour = chrono::Duration::hours(1);
        let today = sitetally_core::day_of(chrono::Utc::now().timestamp_millis());
        let noon = i64::from(today) * sitetally_core::MS_PER_DAY + 12 * hour.num_milliseconds();
        let now = chrono::DateTime::from_timestamp_millis(noon).unwrap();
        let ago = [
            chrono::Duration::days(59) + hour * 23,
            chrono::Duration::days(60) + hour,
        ];
        let rows: Vec<Sighting> = (0..2u64)
            .map(|k| {
                let at = (now - ago[k as usize]).timestamp_millis();
                sighting(k, DeviceCategory::Ot, at)
            })
            .collect();
        assert_eq!(rows[0].day, rows[1].day, "both on the boundary day");
        let (source, _dir) = counts_of(&rows).await;
        let q = sixty_days_to(now);
        let counts = source.site_counts(&q).await.unwrap();
        let ot: u64 = counts.iter().map(|c| c.count.value).sum();
        assert_eq!(ot, 1, "estimate path: {counts:?}");
        let exact = source.exact_site_count("t", "s", &[DeviceCategory::Ot], &q);
        assert_eq!(exact.await.unwrap(), 1);
    }
}
