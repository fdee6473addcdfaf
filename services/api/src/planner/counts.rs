//! A site's distinct devices per day, ISO week or month and category.

use super::{check_id, date_of, date_range, day_number, method, periods, CountsRequest, Planner};
use crate::error::ApiError;
use crate::model::*;
use sitetally_core::DeviceCategory;
use sitetally_licensing::count::Count;
use sitetally_store::{CountFilter, DayRange};
use std::collections::BTreeMap;

impl Planner {
    fn period_count(&self, start: u16, end: u16, category: &str, c: Count) -> PeriodCount {
        PeriodCount {
            start: date_of(start),
            end: date_of(end),
            category: category.to_string(),
            devices: c.value,
            method: method(&c),
            sigma: c.sigma,
            error_bound: c.error_bound(self.settings.error_band_sigmas),
        }
    }

    /// A site's distinct devices per period and category.
    pub async fn counts(
        &self,
        tenant: &str,
        site: &str,
        req: CountsRequest,
    ) -> Result<CountsResponse, ApiError> {
        check_id("tenant", tenant)?;
        check_id("site", site)?;
        let (from, to) = date_range(req.from, req.to, date_of(self.today()))?;
        let (d_from, d_to) = (day_number(from)?, day_number(to)?);
        self.require_site(tenant, site).await?;
        let daily = self
            .store
            .daily_counts(
                tenant,
                site,
                DayRange {
                    from: d_from,
                    to: d_to,
                    since_ms: None,
                },
                &self.daily_filter(),
            )
            .await?;
        let mut by_day: BTreeMap<u16, Vec<(DeviceCategory, Count)>> = BTreeMap::new();
        for c in &daily {
            by_day.entry(c.day).or_default().push((c.category, c.count));
        }
        let mut counts = Vec::new();
        let source;
        match req.granularity {
            Granularity::Day => {
                source = "per-day sketches (daily_counts); ALL sums the categories, each device being in one \
                          category per day"
                    .to_string();
                for day in d_from..=d_to {
                    let mut cats = by_day.remove(&day).unwrap_or_default();
                    cats.sort_by_key(|(c, _)| c.code());
                    for (cat, c) in &cats {
                        counts.push(self.period_count(day, day, cat.as_str(), *c));
                    }
                    let all = Count::sum(cats.iter().map(|(_, c)| c));
                    counts.push(self.period_count(day, day, "ALL", all));
                }
            }
            Granularity::Week | Granularity::Month => {
                source = "sketches merged over each period (Store::site_counts, per category and for ALL): a \
                          device seen on several days of a period counts once"
                    .to_string();
                for (start, end) in periods(from, to, req.granularity) {
                    let (ps, pe) = (day_number(start)?, day_number(end)?);
                    let mut cats: BTreeMap<i8, DeviceCategory> = BTreeMap::new();
                    for (_, v) in by_day.range(ps..=pe) {
                        cats.extend(v.iter().map(|(c, _)| (c.code(), *c)));
                    }
                    let range = DayRange {
                        from: ps,
                        to: pe,
                        since_ms: None,
                    };
                    for cat in cats.values() {
                        let filter = CountFilter {
                            categories: vec![*cat],
                            include_agent_managed: self.settings.count_agent_managed,
                        };
                        let c = self.merged(tenant, site, range, &filter).await?;
                        counts.push(self.period_count(ps, pe, cat.as_str(), c));
                    }
                    let all = if cats.is_empty() {
                        Count::exact(0)
                    } else {
                        self.merged(tenant, site, range, &self.daily_filter())
                            .await?
                    };
                    counts.push(self.period_count(ps, pe, "ALL", all));
                }
            }
        }
        Ok(CountsResponse {
            tenant: tenant.to_string(),
            site: site.to_string(),
            from,
            to,
            granularity: req.granularity,
            source,
            counts,
        })
    }

    /// One site's merged sketch count over a range. The Store trait merges per site only
    /// for a whole tenant, so this picks the site out of the tenant's list.
    async fn merged(
        &self,
        tenant: &str,
        site: &str,
        range: DayRange,
        filter: &CountFilter,
    ) -> Result<Count, ApiError> {
        let all = self.store.site_counts(Some(tenant), range, filter).await?;
        Ok(all
            .into_iter()
            .find(|c| c.tenant == tenant && c.site == site)
            .map(|c| c.count)
            .unwrap_or(Count::exact(0)))
    }
}
