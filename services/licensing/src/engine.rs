//! Turns counts into decisions for every subject (OT sites, Enterprise IoT tenants,
//! legacy plans), fetching the exact count whenever an estimate's band straddles a
//! boundary the decision depends on.

use crate::count::{
    CategoryCount, Count, CountError, CountQuery, CountSource, CountWindow, MAX_DEVICES,
};
use crate::decision::{
    decide_eiot, decide_legacy_eiot, decide_legacy_ot, decide_site, utilisation, Decision, Outcome,
    SiteContext, Status, Subject,
};
use crate::licence::{LicenceBook, Tenant};
use crate::settings::Settings;
use crate::tier::TierCatalogue;
use chrono::{DateTime, Utc};
use sitetally_core::DeviceCategory;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

/// Previous statuses by [`Subject::key`], for hysteresis.
pub type PreviousStatuses = HashMap<String, Status>;

/// Decides with `est`; if the band's ends decide differently, fetches the exact count and
/// decides on it. Records which count was used.
pub async fn resolve<D, F, Fut>(
    subject: Subject,
    window: CountWindow,
    est: Count,
    settings: &Settings,
    now: DateTime<Utc>,
    decide: D,
    fetch_exact: F,
) -> Decision
where
    D: Fn(u64) -> Outcome,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<u64, CountError>>,
{
    let k = settings.error_band_sigmas;
    let decision = |count: Count, estimate, exact_fetched, uncertain, outcome: Outcome| Decision {
        subject: subject.clone(),
        window,
        utilisation: utilisation(outcome.billed, outcome.licensed_capacity),
        count,
        estimate,
        exact_fetched,
        uncertain,
        outcome,
        decided_at: now,
    };
    let at_value = decide(est.value);
    if est.is_exact() {
        return decision(est, None, false, false, at_value);
    }
    let (lo, hi) = est.band(k);
    let (at_lo, at_hi) = (decide(lo), decide(hi));
    if at_lo.same_decision(&at_hi) {
        return decision(est, None, false, false, at_value);
    }
    match fetch_exact().await {
        Ok(exact) => {
            let outcome = decide(exact);
            decision(Count::exact(exact), Some(est), true, false, outcome)
        }
        Err(e) => {
            tracing::warn!(subject = %subject, error = %e, "estimate straddles a boundary and no exact count is available");
            let mut outcome = at_value;
            // The band's upper end decides over and its lower end does not: the subject
            // may be over. Never "near limit" or "within", whatever the value says.
            if at_hi.status.is_over() && !at_lo.status.is_over() {
                outcome.status = Status::PossiblyOver {
                    if_over: Box::new(at_hi.status),
                };
                outcome.required_tier = at_hi.required_tier;
            }
            outcome.notes.push(format!(
                "estimate {}±{} straddles a boundary; exact count unavailable ({e})",
                est.value,
                est.error_bound(k)
            ));
            decision(est, None, false, true, outcome)
        }
    }
}

/// The sum of `counts`, as [`Count::sum`], or an error when it overflows or is above
/// [`MAX_DEVICES`]; `what` names the subject in the error.
fn checked_sum<'a>(
    counts: impl IntoIterator<Item = &'a Count>,
    what: &dyn Fn() -> String,
) -> Result<Count, CountError> {
    let counts: Vec<&Count> = counts.into_iter().collect();
    let total = counts
        .iter()
        .try_fold(0u64, |sum, c| sum.checked_add(c.value))
        .filter(|&v| v <= MAX_DEVICES);
    match total {
        Some(_) => Ok(Count::sum(counts)),
        None => Err(out_of_range(what())),
    }
}

fn out_of_range(what: String) -> CountError {
    CountError::OutOfRange(format!(
        "{what}: device count above the largest supported count ({MAX_DEVICES} devices)"
    ))
}

/// Sums counts of `categories` per (tenant, site).
fn per_site(
    counts: &[CategoryCount],
    categories: &[DeviceCategory],
) -> BTreeMap<(String, String), Vec<Count>> {
    let mut out: BTreeMap<(String, String), Vec<Count>> = BTreeMap::new();
    for c in counts {
        let entry = out.entry((c.tenant.clone(), c.site.clone())).or_default();
        if categories.contains(&c.category) {
            entry.push(c.count);
        }
    }
    out
}

/// A tenant's distinct devices in `categories`: merged across sites when the source can
/// (a device seen at several sites counts once), else the sum of its per-site counts.
async fn tenant_estimate(
    source: &dyn CountSource,
    tenant: &str,
    categories: &[DeviceCategory],
    query: &CountQuery,
    per_site_sum: Count,
) -> Result<Count, CountError> {
    Ok(source
        .tenant_count(tenant, categories, query)
        .await?
        .unwrap_or(per_site_sum))
}

/// Exact tenant-wide distinct devices (every site of the tenant), or the sum of exact
/// per-site counts when the source cannot merge across sites.
async fn exact_tenant(
    source: &dyn CountSource,
    tenant: &str,
    sites: &[String],
    categories: &[DeviceCategory],
    query: &CountQuery,
) -> Result<u64, CountError> {
    match source.exact_tenant_count(tenant, categories, query).await? {
        Some(n) => Ok(n),
        None => exact_sum(source, tenant, sites, categories, query).await,
    }
}

async fn exact_sum(
    source: &dyn CountSource,
    tenant: &str,
    sites: &[String],
    categories: &[DeviceCategory],
    query: &CountQuery,
) -> Result<u64, CountError> {
    let mut total = 0u64;
    for site in sites {
        let n = source
            .exact_site_count(tenant, site, categories, query)
            .await?;
        total = total
            .checked_add(n)
            .filter(|&v| v <= MAX_DEVICES)
            .ok_or_else(|| {
                out_of_range(format!("{tenant}: exact count over {} sites", sites.len()))
            })?;
    }
    Ok(total)
}

/// Decides every subject the licences or the counts mention.
pub async fn decide_all(
    book: &LicenceBook,
    settings: &Settings,
    source: &dyn CountSource,
    previous: &PreviousStatuses,
    now: DateTime<Utc>,
) -> Result<Vec<Decision>, CountError> {
    let run = Run {
        book,
        settings,
        source,
        previous,
        now,
    };
    let ot_query = CountQuery {
        window: CountWindow::ending(now, settings.ot_window_days),
        include_agent_managed: settings.count_agent_managed,
    };
    let ot_counts = source.site_counts(&ot_query).await?;
    let sites = run.ot_sites(&ot_counts);
    let (mut decisions, site_counts) = run.decide_ot_sites(&sites, &ot_query).await?;
    decisions.extend(run.decide_legacy_ot_plans(&site_counts, &ot_query).await?);
    decisions.extend(run.decide_enterprise_iot().await?);
    Ok(decisions)
}

/// What every decision of one run shares.
struct Run<'a> {
    book: &'a LicenceBook,
    settings: &'a Settings,
    source: &'a dyn CountSource,
    previous: &'a PreviousStatuses,
    now: DateTime<Utc>,
}

/// Per-category counts of each OT site to decide, by (tenant, site).
type SiteCounts = BTreeMap<(String, String), Vec<Count>>;

impl Run<'_> {
    /// The OT sites to decide: every site with devices in the OT categories, every
    /// licensed site (exactly zero when none were seen), but not Enterprise IoT
    /// locations.
    fn ot_sites(&self, ot_counts: &[CategoryCount]) -> SiteCounts {
        let mut sites = per_site(ot_counts, &self.settings.ot_categories);
        // A site that is not in the licence book, of a tenant with Enterprise IoT
        // coverage, where no OT-category device was seen, is an Enterprise IoT location,
        // not an unlicensed OT site: it is decided only at tenant level.
        sites.retain(|(tenant, site), _| {
            let Some(t) = self.book.tenant(tenant) else {
                return true;
            };
            t.site(site).is_some()
                || t.enterprise_iot.is_none()
                || ot_counts.iter().any(|c| {
                    &c.tenant == tenant && &c.site == site && c.category == DeviceCategory::Ot
                })
        });
        for t in &self.book.tenants {
            for s in &t.sites {
                sites.entry((t.id.clone(), s.id.clone())).or_default();
            }
        }
        sites
    }

    /// One decision per OT site, and each site's estimate (legacy plans sum them).
    async fn decide_ot_sites(
        &self,
        sites: &SiteCounts,
        ot_query: &CountQuery,
    ) -> Result<(Vec<Decision>, HashMap<(String, String), Count>), CountError> {
        let default_catalogue = TierCatalogue::default();
        let mut decisions = Vec::new();
        let mut estimates = HashMap::new();
        for ((tenant_id, site_id), counts) in sites {
            let est = checked_sum(&counts[..], &|| format!("{tenant_id}/{site_id}"))?;
            estimates.insert((tenant_id.clone(), site_id.clone()), est);
            let tenant = self.book.tenant(tenant_id);
            let ctx = SiteContext {
                tenant,
                site_id,
                site: tenant.and_then(|t| t.site(site_id)),
                catalogue: tenant.map(|t| &t.catalogue).unwrap_or(&default_catalogue),
                settings: self.settings,
                now: self.now,
            };
            let subject = Subject::OtSite {
                tenant: tenant_id.clone(),
                site: site_id.clone(),
            };
            let prev = self.previous.get(&subject.key());
            let categories = &self.settings.ot_categories;
            let d = resolve(
                subject,
                ot_query.window,
                est,
                self.settings,
                self.now,
                |v| decide_site(&ctx, v, prev),
                || {
                    self.source
                        .exact_site_count(tenant_id, site_id, categories, ot_query)
                },
            )
            .await;
            decisions.push(d);
        }
        Ok((decisions, estimates))
    }

    /// Legacy committed-device OT plans in force, over the OT window: the sum of the
    /// sites each plan covers.
    async fn decide_legacy_ot_plans(
        &self,
        site_counts: &HashMap<(String, String), Count>,
        ot_query: &CountQuery,
    ) -> Result<Vec<Decision>, CountError> {
        let (settings, now) = (self.settings, self.now);
        let mut decisions = Vec::new();
        for t in &self.book.tenants {
            for plan in &t.legacy_ot_plans {
                let covered: Vec<String> = site_counts
                    .keys()
                    .filter(|(tn, s)| tn == &t.id && plan.covers(s))
                    .map(|(_, s)| s.clone())
                    .collect();
                let est = checked_sum(
                    covered
                        .iter()
                        .filter_map(|s| site_counts.get(&(t.id.clone(), s.clone()))),
                    &|| format!("{}/legacy OT plan {}", t.id, plan.id),
                )?;
                let subject = Subject::LegacyOtPlan {
                    tenant: t.id.clone(),
                    plan: plan.id.clone(),
                };
                let prev = self.previous.get(&subject.key());
                if decide_legacy_ot(plan, 0, prev, settings, now).is_none() {
                    continue;
                }
                let d = resolve(
                    subject,
                    ot_query.window,
                    est,
                    settings,
                    now,
                    |v| {
                        decide_legacy_ot(plan, v, prev, settings, now).expect("commitment in force")
                    },
                    || {
                        exact_sum(
                            self.source,
                            &t.id,
                            &covered,
                            &settings.ot_categories,
                            ot_query,
                        )
                    },
                )
                .await;
                decisions.push(d);
            }
        }
        Ok(decisions)
    }

    /// Enterprise IoT coverage and legacy Enterprise IoT plans, per tenant, over the
    /// Enterprise IoT window (shorter than the OT one).
    async fn decide_enterprise_iot(&self) -> Result<Vec<Decision>, CountError> {
        let tenants: Vec<&Tenant> = self
            .book
            .tenants
            .iter()
            .filter(|t| t.enterprise_iot.is_some())
            .collect();
        if tenants.is_empty() {
            return Ok(Vec::new());
        }
        let q = CountQuery {
            window: CountWindow::ending(self.now, self.settings.eiot_window_days),
            include_agent_managed: self.settings.count_agent_managed,
        };
        let counts = self.source.site_counts(&q).await?;
        let mut decisions = Vec::new();
        for t in tenants {
            let mine: Vec<CategoryCount> = counts
                .iter()
                .filter(|c| c.tenant == t.id)
                .cloned()
                .collect();
            decisions.extend(self.decide_tenant_eiot(t, &mine, &q).await?);
        }
        Ok(decisions)
    }

    /// A tenant's devices in `categories`: merged across its sites where the source can,
    /// else the sum of its per-site counts.
    async fn tenant_estimate(
        &self,
        t: &Tenant,
        mine: &[CategoryCount],
        categories: &[DeviceCategory],
        q: &CountQuery,
    ) -> Result<Count, CountError> {
        let sum = checked_sum(
            mine.iter()
                .filter(|c| categories.contains(&c.category))
                .map(|c| &c.count),
            &|| t.id.clone(),
        )?;
        let est = tenant_estimate(self.source, &t.id, categories, q, sum).await?;
        if est.value > MAX_DEVICES {
            return Err(out_of_range(t.id.clone()));
        }
        Ok(est)
    }

    /// One tenant's Enterprise IoT decision (unless a legacy plan alone covers it) and
    /// its legacy Enterprise IoT plan decision (when one is in force).
    async fn decide_tenant_eiot(
        &self,
        t: &Tenant,
        mine: &[CategoryCount],
        q: &CountQuery,
    ) -> Result<Vec<Decision>, CountError> {
        let (settings, now) = (self.settings, self.now);
        let mut site_ids: Vec<String> = mine.iter().map(|c| c.site.clone()).collect();
        site_ids.sort();
        site_ids.dedup();
        let mut decisions = Vec::new();
        let subject = Subject::EnterpriseIot {
            tenant: t.id.clone(),
        };
        let prev = self.previous.get(&subject.key());
        let eiot = t
            .enterprise_iot
            .as_ref()
            .expect("tenants with coverage only");
        let on_legacy_plan_only = eiot.e5_licences == 0
            && eiot.standalone_licences == 0
            && eiot.trial.is_none()
            && decide_legacy_eiot(t, 0, None, settings, now).is_some();
        // A legacy plan alone is judged by its commitment (below), not against E5
        // licences the tenant never had.
        if !on_legacy_plan_only {
            let d = resolve(
                subject,
                q.window,
                self.tenant_estimate(t, mine, &settings.eiot_categories, q)
                    .await?,
                settings,
                now,
                |v| decide_eiot(t, v, prev, settings, now),
                || exact_tenant(self.source, &t.id, &site_ids, &settings.eiot_categories, q),
            )
            .await;
            decisions.push(d);
        }
        let subject = Subject::LegacyEiotPlan {
            tenant: t.id.clone(),
        };
        let prev = self.previous.get(&subject.key());
        if decide_legacy_eiot(t, 0, prev, settings, now).is_some() {
            let categories = &settings.legacy_eiot_categories;
            let d = resolve(
                subject,
                q.window,
                self.tenant_estimate(t, mine, categories, q).await?,
                settings,
                now,
                |v| decide_legacy_eiot(t, v, prev, settings, now).expect("commitment in force"),
                || exact_tenant(self.source, &t.id, &site_ids, categories, q),
            )
            .await;
            decisions.push(d);
        }
        Ok(decisions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::{CountMethod, StaticCounts};
    use crate::tier::{Tier, TierNeed};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn book() -> LicenceBook {
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
[tenants.enterprise_iot]
e5_licences = 240
"#,
            &Settings::default(),
        )
        .unwrap()
    }

    /// Decides with default settings, no previous statuses, at 2025-06-01.
    async fn run(book: &LicenceBook, src: &dyn CountSource) -> Result<Vec<Decision>, CountError> {
        decide_all(
            book,
            &Settings::default(),
            src,
            &HashMap::new(),
            t("2025-06-01T00:00:00Z"),
        )
        .await
    }

    fn sc(site: &str, cat: DeviceCategory, count: Count) -> CategoryCount {
        CategoryCount {
            tenant: "acme".into(),
            site: site.into(),
            category: cat,
            count,
        }
    }

    #[tokio::test]
    async fn straddling_estimate_fetches_exact_and_records_it() {
        let mut src = StaticCounts {
            counts: vec![sc("p1", DeviceCategory::Ot, Count::estimated(1_010, 16.0))],
            ..Default::default()
        };
        src.exact.insert(("acme".into(), "p1".into()), 998);
        let d = run(&book(), &src).await.unwrap();
        let site = d.iter().find(|d| d.subject.site() == Some("p1")).unwrap();
        assert!(site.exact_fetched);
        assert_eq!(site.count, Count::exact(998));
        assert_eq!(site.estimate.unwrap().value, 1_010);
        assert_eq!(*site.status(), Status::NearLimit);
    }

    #[tokio::test]
    async fn clear_estimate_is_used_as_is() {
        let src = StaticCounts {
            counts: vec![sc("p1", DeviceCategory::Ot, Count::estimated(3_000, 16.0))],
            ..Default::default()
        };
        let d = run(&book(), &src).await.unwrap();
        let site = &d[0];
        assert!(!site.exact_fetched && !site.uncertain);
        assert_eq!(site.count.method, CountMethod::Estimated);
        assert_eq!(
            *site.status(),
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl)
            }
        );
    }

    #[tokio::test]
    async fn missing_exact_count_marks_decision_uncertain() {
        let src = StaticCounts {
            counts: vec![sc("p1", DeviceCategory::Ot, Count::estimated(1_010, 16.0))],
            ..Default::default()
        };
        let d = run(&book(), &src).await.unwrap();
        assert!(d[0].uncertain);
        // 1,010±48 against an L licence: the band's upper end is over, its lower end is
        // not: possibly over, never "near limit".
        assert_eq!(d[0].status().code(), "POSSIBLY_OVER");
        assert!(!d[0].status().is_over() && d[0].status().is_possibly_over());
        assert_eq!(
            d[0].status().to_string(),
            "POSSIBLY_OVER (if over: OVER_TIER (buy XL))"
        );
        // A band straddling only the near-limit boundary stays what its value says.
        let src = StaticCounts {
            counts: vec![sc("p1", DeviceCategory::Ot, Count::estimated(900, 16.0))],
            ..Default::default()
        };
        let d = run(&book(), &src).await.unwrap();
        assert!(d[0].uncertain);
        assert_eq!(*d[0].status(), Status::NearLimit);
    }

    #[tokio::test]
    async fn site_named_only_by_a_legacy_plan_is_covered_by_it() {
        let book = LicenceBook::from_toml_str(
            "[[tenants]]\nid = \"acme\"\n[[tenants.legacy_ot_plans]]\nid = \"plan\"\nsites = [\"depot\"]\ncommitments = [{ devices = 3000, confirmed_at = \"2025-01-01\" }]\n",
            &Settings::default(),
        )
        .unwrap();
        let src = StaticCounts {
            counts: vec![sc("depot", DeviceCategory::Ot, Count::exact(2_000))],
            ..Default::default()
        };
        let d = run(&book, &src).await.unwrap();
        let site = d
            .iter()
            .find(|d| d.subject.site() == Some("depot"))
            .unwrap();
        assert_eq!(
            *site.status(),
            Status::WithinTier,
            "{:?}",
            site.outcome.notes
        );
        assert_eq!(site.outcome.coverage, crate::decision::Coverage::LegacyPlan);
        let plan = d
            .iter()
            .find(|d| matches!(d.subject, Subject::LegacyOtPlan { .. }))
            .unwrap();
        assert_eq!(plan.count.value, 2_000);
    }

    #[tokio::test]
    async fn counts_beyond_the_supported_range_are_errors_not_wrapped_sums() {
        let src = StaticCounts {
            counts: vec![
                sc("p1", DeviceCategory::Ot, Count::exact(u64::MAX)),
                sc("p1", DeviceCategory::Iot, Count::exact(2)),
            ],
            ..Default::default()
        };
        let e = run(&book(), &src).await.unwrap_err();
        assert!(
            e.to_string().starts_with("acme/p1: device count above"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn eiot_excludes_computers_and_mobile_and_counts_across_sites() {
        let src = StaticCounts {
            counts: vec![
                sc("p1", DeviceCategory::Iot, Count::exact(1_000)),
                sc("p2", DeviceCategory::Iot, Count::exact(204)),
                sc("p2", DeviceCategory::ComputersMobile, Count::exact(5_000)),
            ],
            ..Default::default()
        };
        let d = run(&book(), &src).await.unwrap();
        let e = d
            .iter()
            .find(|d| matches!(d.subject, Subject::EnterpriseIot { .. }))
            .unwrap();
        assert_eq!(e.count.value, 1_204);
        assert_eq!(*e.status(), Status::StandaloneNeeded { licences_to_buy: 4 });
        assert_eq!(e.window.days(), 30);
        // p2 saw only IoT devices and is not in the licence book: an Enterprise IoT
        // location, not an unlicensed OT site.
        assert!(d.iter().all(|d| d.subject.site() != Some("p2")));
        assert_eq!(d[0].window.days(), 60);
    }

    /// Per-site counts plus a tenant-wide merge (as ClickHouse answers it).
    struct MergingCounts {
        inner: StaticCounts,
        tenant_wide: u64,
    }

    #[async_trait::async_trait]
    impl CountSource for MergingCounts {
        async fn site_counts(&self, q: &CountQuery) -> Result<Vec<CategoryCount>, CountError> {
            self.inner.site_counts(q).await
        }
        async fn exact_site_count(
            &self,
            t: &str,
            s: &str,
            c: &[DeviceCategory],
            q: &CountQuery,
        ) -> Result<u64, CountError> {
            self.inner.exact_site_count(t, s, c, q).await
        }
        async fn tenant_count(
            &self,
            _: &str,
            _: &[DeviceCategory],
            _: &CountQuery,
        ) -> Result<Option<Count>, CountError> {
            Ok(Some(Count::exact(self.tenant_wide)))
        }
    }

    #[tokio::test]
    async fn eiot_counts_a_device_seen_at_two_sites_once_when_the_source_can_merge() {
        // 1,000 + 204 per site, but 10 devices were seen at both sites: 1,194 distinct.
        let src = MergingCounts {
            inner: StaticCounts {
                counts: vec![
                    sc("p1", DeviceCategory::Iot, Count::exact(1_000)),
                    sc("p2", DeviceCategory::Iot, Count::exact(204)),
                ],
                ..Default::default()
            },
            tenant_wide: 1_194,
        };
        let d = run(&book(), &src).await.unwrap();
        let e = d
            .iter()
            .find(|d| matches!(d.subject, Subject::EnterpriseIot { .. }))
            .unwrap();
        assert_eq!(e.count.value, 1_194);
        // 240 E5 × 5 = 1,200 covers 1,194 (near the limit): nothing to buy, where the
        // per-site sum (1,204) would have asked for a standalone licence.
        assert!(
            !matches!(e.status(), Status::StandaloneNeeded { .. }),
            "{:?}",
            e.status()
        );
        assert_eq!(e.status().code(), "NEAR_LIMIT");
    }
}
