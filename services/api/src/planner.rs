//! The questions capacity planners ask, answered over any [`Store`] and the licence
//! book. The HTTP handlers and the CLI both call [`Planner`]; neither has logic of its
//! own.
//!
//! Every store call passes tenant and site as bound parameters (the `Store` trait's
//! implementations bind them; nothing here builds SQL).

use crate::error::ApiError;
use crate::model::*;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sitetally_core::DeviceCategory;
use sitetally_licensing::count::{Count, CountMethod, CountQuery, CountWindow};
use sitetally_licensing::decision::{Coverage, Decision, Subject};
use sitetally_licensing::engine::{decide_all, PreviousStatuses};
use sitetally_licensing::forecast::{crossing, Trend, MIN_POINTS};
use sitetally_licensing::{LicenceBook, Settings, SubjectState, TierCatalogue};
use sitetally_store::counts::{window_days, StoreCounts};
use sitetally_store::history::{AlertLog, AlertStateStore, DecisionHistory};
use sitetally_store::{CountFilter, DayRange, Store};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Longest date range a counts query may span.
pub const MAX_RANGE_DAYS: i64 = 366;
/// Largest page of sites or decisions.
pub const MAX_PAGE: usize = 1_000;
pub const DEFAULT_PAGE: usize = 100;
/// Largest offset accepted (bounded so a request cannot ask for absurd pages).
pub const MAX_OFFSET: usize = 1_000_000;
/// How far back a site counts as known (the sightings table keeps 400 days).
pub const KNOWN_LOOKBACK_DAYS: u16 = 400;
pub const DEFAULT_HISTORY_DAYS: u32 = 90;
pub const MIN_HISTORY_DAYS: u32 = 7;
pub const MAX_HISTORY_DAYS: u32 = 366;
pub const DEFAULT_HORIZON_DAYS: u32 = 365;
pub const MAX_HORIZON_DAYS: u32 = 730;
/// Longest tenant or site id accepted.
pub const MAX_ID_LEN: usize = 256;
/// Default length of a counts range when `from` is not given.
pub const DEFAULT_RANGE_DAYS: i64 = 30;

/// A page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// Checks bounds (422 outside them).
    pub fn new(offset: Option<usize>, limit: Option<usize>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        let offset = offset.unwrap_or(0);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::Unprocessable(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        if offset > MAX_OFFSET {
            return Err(ApiError::Unprocessable(format!(
                "offset must be at most {MAX_OFFSET}"
            )));
        }
        Ok(Self { offset, limit })
    }

    fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .cloned()
            .collect()
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: DEFAULT_PAGE,
        }
    }
}

/// What a counts query asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountsRequest {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub granularity: Granularity,
}

/// What a forecast asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForecastRequest {
    pub history_days: Option<u32>,
    pub horizon_days: Option<u32>,
}

/// Answers planners' questions; see the module documentation.
pub struct Planner {
    store: Arc<dyn Store>,
    licences: LicenceBook,
    settings: Settings,
    alert_state: Option<Arc<dyn AlertStateStore>>,
    alert_log: Option<Arc<dyn AlertLog>>,
    decision_history: Option<Arc<dyn DecisionHistory>>,
    fixed_now: Option<DateTime<Utc>>,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// The calendar date of a store day number.
pub fn date_of(day: u16) -> NaiveDate {
    epoch() + Duration::days(i64::from(day))
}

/// The store day number of a date (422 outside 1970-01-01..=2149-06-06).
pub fn day_number(date: NaiveDate) -> Result<u16, ApiError> {
    u16::try_from((date - epoch()).num_days()).map_err(|_| {
        ApiError::Unprocessable(format!(
            "{date}: dates must be between 1970-01-01 and {}",
            date_of(u16::MAX)
        ))
    })
}

fn day_of_time(t: DateTime<Utc>) -> u16 {
    sitetally_core::day_of(t.timestamp_millis())
}

/// 400 for ids that cannot be tenant or site ids.
pub fn check_id(kind: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{kind} must be 1 to {MAX_ID_LEN} characters without control characters"
        )));
    }
    Ok(())
}

fn method(c: &Count) -> String {
    method_name(c.method)
}

fn method_name(m: CountMethod) -> String {
    match m {
        CountMethod::Exact => "exact".into(),
        CountMethod::Estimated => "estimated".into(),
    }
}

fn coverage(c: &Coverage) -> String {
    match c {
        Coverage::Paid => "paid",
        Coverage::Trial => "trial",
        Coverage::LegacyPlan => "legacy_plan",
        Coverage::None => "none",
    }
    .into()
}

fn scope(s: &Subject) -> String {
    match s {
        Subject::OtSite { .. } => "ot_site",
        Subject::EnterpriseIot { .. } => "enterprise_iot",
        Subject::LegacyOtPlan { .. } => "legacy_ot_plan",
        Subject::LegacyEiotPlan { .. } => "legacy_eiot_plan",
    }
    .into()
}

impl Planner {
    pub fn new(store: Arc<dyn Store>, licences: LicenceBook, settings: Settings) -> Self {
        Self {
            store,
            licences,
            settings,
            alert_state: None,
            alert_log: None,
            decision_history: None,
            fixed_now: None,
        }
    }

    /// Reads previous statuses (hysteresis) and status history from the reconciler's
    /// alert state.
    pub fn with_alert_state(mut self, state: Arc<dyn AlertStateStore>) -> Self {
        self.alert_state = Some(state);
        self
    }

    /// Serves the alert history from the reconciler's alert log.
    pub fn with_alert_log(mut self, log: Arc<dyn AlertLog>) -> Self {
        self.alert_log = Some(log);
        self
    }

    /// Serves `/decisions` from the reconciler's latest run when there is one.
    pub fn with_decision_history(mut self, history: Arc<dyn DecisionHistory>) -> Self {
        self.decision_history = Some(history);
        self
    }

    /// Alerts raised for `tenant` from `from` to `to` (UTC days, inclusive), newest first.
    pub async fn alerts(
        &self,
        tenant: &str,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        page: Page,
    ) -> Result<AlertsResponse, ApiError> {
        self.require_tenant(tenant).await?;
        let to = to.unwrap_or_else(|| self.now().date_naive());
        let from = from.unwrap_or(to - Duration::days(29));
        if from > to {
            return Err(ApiError::Unprocessable(format!(
                "from ({from}) is after to ({to})"
            )));
        }
        if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
            return Err(ApiError::Unprocessable(format!(
                "a range may span at most {MAX_RANGE_DAYS} days"
            )));
        }
        let start = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let end = to.and_hms_opt(23, 59, 59).expect("end of day").and_utc();
        let all = match &self.alert_log {
            None => Vec::new(),
            Some(log) => log
                .alerts(tenant, start, end, (page.offset + page.limit) as u64)
                .await
                .map_err(|e| ApiError::Unavailable(format!("alert log: {e}")))?,
        };
        let rows: Vec<AlertRow> = all
            .iter()
            .map(|a| AlertRow {
                raised_at: a.decided_at,
                idempotency_key: a.idempotency_key.clone(),
                site: a.site.clone(),
                old_status: a.old_status.clone(),
                new_status: a.new_status.clone(),
                devices: a.device_count,
                method: method_name(a.count_method),
                error_bound: a.error_bound,
                licensed_tier: a.licensed_tier.clone(),
                required_tier: a.required_tier.clone(),
                message: a.message.clone(),
            })
            .collect();
        Ok(AlertsResponse {
            tenant: tenant.to_string(),
            from,
            to,
            alert_log: self.alert_log.is_some(),
            total: rows.len(),
            offset: page.offset,
            limit: page.limit,
            alerts: page.slice(&rows),
        })
    }

    /// Answers as of `now` instead of the clock (reproducible output, tests).
    pub fn with_now(mut self, now: DateTime<Utc>) -> Self {
        self.fixed_now = Some(now);
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.fixed_now.unwrap_or_else(Utc::now)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn today(&self) -> u16 {
        day_of_time(self.now())
    }

    fn catalogue(&self, tenant: &str) -> TierCatalogue {
        self.licences
            .tenant(tenant)
            .map(|t| t.catalogue.clone())
            .unwrap_or_default()
    }

    /// Every tenant in the licence book or seen by the store in the last 400 days.
    pub async fn tenants(&self) -> Result<Vec<String>, ApiError> {
        let mut out: BTreeSet<String> =
            self.licences.tenants.iter().map(|t| t.id.clone()).collect();
        let range = DayRange::ending(self.today(), KNOWN_LOOKBACK_DAYS);
        for c in self
            .store
            .site_counts(None, range, &CountFilter::all())
            .await?
        {
            out.insert(c.tenant);
        }
        Ok(out.into_iter().collect())
    }

    /// Sites in the licence book or seen by the store in the last 400 days.
    async fn known_sites(&self, tenant: &str) -> Result<BTreeSet<String>, ApiError> {
        let mut out: BTreeSet<String> = self
            .licences
            .tenant(tenant)
            .map(|t| t.sites.iter().map(|s| s.id.clone()).collect())
            .unwrap_or_default();
        let range = DayRange::ending(self.today(), KNOWN_LOOKBACK_DAYS);
        for c in self
            .store
            .site_counts(Some(tenant), range, &CountFilter::all())
            .await?
        {
            if c.tenant == tenant {
                out.insert(c.site);
            }
        }
        Ok(out)
    }

    /// 404 unless the tenant is in the licence book or has sightings.
    pub async fn require_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        check_id("tenant", tenant)?;
        if self.licences.tenant(tenant).is_some() || !self.known_sites(tenant).await?.is_empty() {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!(
                "unknown tenant {tenant:?}: not in the licence file and no devices seen"
            )))
        }
    }

    async fn require_site(&self, tenant: &str, site: &str) -> Result<(), ApiError> {
        check_id("tenant", tenant)?;
        check_id("site", site)?;
        let sites = self.known_sites(tenant).await?;
        if sites.contains(site) {
            return Ok(());
        }
        if sites.is_empty() && self.licences.tenant(tenant).is_none() {
            return Err(ApiError::NotFound(format!("unknown tenant {tenant:?}")));
        }
        Err(ApiError::NotFound(format!(
            "unknown site {site:?} of tenant {tenant:?}"
        )))
    }

    /// The reconciler's decisions for one tenant, now, and its alert state.
    /// The reconciler's alert state per subject, when it is configured.
    async fn alert_states(&self) -> Result<HashMap<String, SubjectState>, ApiError> {
        Ok(match &self.alert_state {
            Some(s) => s.load_all().await?,
            None => HashMap::new(),
        })
    }

    async fn decide(
        &self,
        tenant: &str,
    ) -> Result<(Vec<Decision>, HashMap<String, SubjectState>), ApiError> {
        let book = LicenceBook {
            tenants: self.licences.tenant(tenant).cloned().into_iter().collect(),
        };
        let states = self.alert_states().await?;
        let previous: PreviousStatuses = states
            .iter()
            .map(|(k, s)| (k.clone(), s.status.clone()))
            .collect();
        let source = StoreCounts::for_tenant(Arc::clone(&self.store), tenant);
        let decisions = decide_all(&book, &self.settings, &source, &previous, self.now()).await?;
        Ok((decisions, states))
    }

    fn site_row(&self, d: &Decision) -> SiteRow {
        let o = &d.outcome;
        SiteRow {
            site: d.subject.site().unwrap_or_default().to_string(),
            devices: d.count.value,
            method: method(&d.count),
            error_bound: d.error_bound(&self.settings),
            exact_fetched: d.exact_fetched,
            uncertain: d.uncertain,
            licensed_tier: o.licensed_tier.map(|t| t.to_string()),
            licensed_capacity: o.licensed_capacity,
            required_tier: o.required_tier.map(|t| t.to_string()),
            utilisation: d.utilisation,
            status: o.status.code().to_string(),
            status_detail: o.status.to_string(),
            coverage: coverage(&o.coverage),
            notes: o.notes.clone(),
        }
    }

    /// A tenant's OT sites with count, licensed tier, utilisation and status.
    pub async fn sites(&self, tenant: &str, page: Page) -> Result<SitesResponse, ApiError> {
        self.require_tenant(tenant).await?;
        let (decisions, _) = self.decide(tenant).await?;
        let rows: Vec<SiteRow> = decisions
            .iter()
            .filter(|d| matches!(d.subject, Subject::OtSite { .. }))
            .map(|d| self.site_row(d))
            .collect();
        Ok(SitesResponse {
            tenant: tenant.to_string(),
            as_of: self.now(),
            window_days: self.settings.ot_window_days,
            total: rows.len(),
            offset: page.offset,
            limit: page.limit,
            sites: page.slice(&rows),
        })
    }

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
        let to = req.to.unwrap_or_else(|| date_of(self.today()));
        let from = req
            .from
            .unwrap_or(to - Duration::days(DEFAULT_RANGE_DAYS - 1));
        if from > to {
            return Err(ApiError::Unprocessable(format!(
                "from ({from}) is after to ({to})"
            )));
        }
        if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
            return Err(ApiError::Unprocessable(format!(
                "a range may span at most {MAX_RANGE_DAYS} days"
            )));
        }
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
                    let range = DayRange { from: ps, to: pe };
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

    /// A site's trend and the projected crossing of its next boundary.
    pub async fn forecast(
        &self,
        tenant: &str,
        site: &str,
        req: ForecastRequest,
    ) -> Result<ForecastResponse, ApiError> {
        check_id("tenant", tenant)?;
        check_id("site", site)?;
        let history = req.history_days.unwrap_or(DEFAULT_HISTORY_DAYS);
        let horizon = req.horizon_days.unwrap_or(DEFAULT_HORIZON_DAYS);
        if !(MIN_HISTORY_DAYS..=MAX_HISTORY_DAYS).contains(&history) {
            return Err(ApiError::Unprocessable(format!(
                "history_days must be between {MIN_HISTORY_DAYS} and {MAX_HISTORY_DAYS}"
            )));
        }
        if !(1..=MAX_HORIZON_DAYS).contains(&horizon) {
            return Err(ApiError::Unprocessable(format!(
                "horizon_days must be between 1 and {MAX_HORIZON_DAYS}"
            )));
        }
        self.require_site(tenant, site).await?;
        let today = self.today();
        let range = DayRange::ending(today, u16::try_from(history).unwrap_or(u16::MAX));
        let daily = self
            .store
            .daily_counts(tenant, site, range, &self.daily_filter())
            .await?;
        let mut totals: BTreeMap<u16, u64> = BTreeMap::new();
        for c in daily
            .iter()
            .filter(|c| self.settings.ot_categories.contains(&c.category))
        {
            *totals.entry(c.day).or_default() += c.count.value;
        }
        // Today is still being counted: fit on complete days unless there are too few.
        let complete = totals.keys().filter(|&&d| d < today).count();
        let use_today = complete < MIN_POINTS;
        let points: Vec<(i64, f64)> = totals
            .iter()
            .filter(|(&d, _)| use_today || d < today)
            .map(|(&d, &v)| (i64::from(d) - i64::from(today), v as f64))
            .collect();
        let history_points: Vec<DayPoint> = totals
            .iter()
            .map(|(&d, &v)| DayPoint {
                date: date_of(d),
                devices: v,
                fitted: use_today || d < today,
            })
            .collect();

        let (decisions, _) = self.decide(tenant).await?;
        let decision = decisions.iter().find(|d| d.subject.site() == Some(site));
        let current = match decision {
            Some(d) => CurrentView {
                devices: d.count.value,
                method: method(&d.count),
                error_bound: d.error_bound(&self.settings),
                licensed_tier: d.outcome.licensed_tier.map(|t| t.to_string()),
                licensed_capacity: d.outcome.licensed_capacity,
                status: d.outcome.status.code().to_string(),
            },
            // Sites with only Enterprise IoT devices get no OT decision.
            None => CurrentView {
                devices: totals.values().copied().max().unwrap_or(0),
                method: "estimated".into(),
                error_bound: 0,
                licensed_tier: None,
                licensed_capacity: None,
                status: "NO_OT_DECISION".into(),
            },
        };

        let cat = self.catalogue(tenant);
        let policy = self.settings.above_xl;
        let label = |b: u64| cat.required(b, policy).to_string();
        let devices = current.devices;
        let (target, target_kind) = match (current.licensed_capacity, &current.licensed_tier) {
            (Some(c), Some(t)) if devices <= c && c > 0 => (
                Some(Boundary {
                    devices: c,
                    label: t.clone(),
                }),
                Some("licensed_capacity".to_string()),
            ),
            _ => {
                let next = cat
                    .boundaries(devices, policy)
                    .into_iter()
                    .find(|&b| b >= devices);
                (
                    next.map(|b| Boundary {
                        devices: b,
                        label: label(b),
                    }),
                    next.map(|_| "tier_boundary".to_string()),
                )
            }
        };
        let top = target
            .as_ref()
            .map(|b| b.devices)
            .unwrap_or(0)
            .max(totals.values().copied().max().unwrap_or(0))
            .max(devices);
        let boundaries: Vec<Boundary> = cat
            .boundaries(top, policy)
            .into_iter()
            .filter(|&b| b <= top.saturating_mul(2).max(100))
            .take(50)
            .map(|b| Boundary {
                devices: b,
                label: label(b),
            })
            .collect();

        let trend = Trend::fit(&points);
        let date_at = |x: i64| date_of(today) + Duration::days(x);
        let (outlook, crossing_date, earliest, latest, summary) = match (&trend, &target) {
            (None, _) => (
                "insufficient_data",
                None,
                None,
                None,
                format!("fewer than {MIN_POINTS} days with devices in the last {history} days: no trend"),
            ),
            (Some(_), None) => ("not_within_horizon", None, None, None, "no boundary to cross".to_string()),
            (Some(t), Some(b)) => {
                let c = crossing(t, b.devices as f64, i64::from(horizon));
                match c.day {
                    Some(day) => (
                        "crosses",
                        Some(date_at(day)),
                        c.earliest.map(date_at),
                        c.latest.map(date_at),
                        format!(
                            "at {:+.1} devices/day the trend passes {} ({}) on {} (95% range {} to {})",
                            t.slope,
                            b.devices,
                            b.label,
                            date_at(day),
                            c.earliest.map(date_at).map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
                            c.latest.map(date_at).map(|d| d.to_string()).unwrap_or_else(|| "after the horizon".into()),
                        ),
                    ),
                    None => (
                        "not_within_horizon",
                        None,
                        c.earliest.map(date_at),
                        None,
                        format!(
                            "at {:+.1} devices/day the trend stays at or below {} ({}) for the next {horizon} days",
                            t.slope, b.devices, b.label
                        ),
                    ),
                }
            }
        };
        Ok(ForecastResponse {
            tenant: tenant.to_string(),
            site: site.to_string(),
            as_of: date_of(today),
            history_days: history,
            horizon_days: horizon,
            current,
            boundaries,
            target,
            target_kind,
            trend: trend.map(|t| TrendView {
                slope_per_day: t.slope,
                today: t.at(0),
                r_squared: t.r_squared,
                residual_sigma: t.residual_sigma,
                points: t.n,
            }),
            outlook: outlook.to_string(),
            crossing_date,
            earliest,
            latest,
            summary,
            history: history_points,
        })
    }

    /// Counts over time follow the same agent-managed setting as decisions (DESIGN §3).
    fn daily_filter(&self) -> CountFilter {
        CountFilter {
            categories: Vec::new(),
            include_agent_managed: self.settings.count_agent_managed,
        }
    }

    /// A tenant's Enterprise IoT devices against E5 and standalone licences.
    pub async fn enterprise_iot(&self, tenant: &str) -> Result<EnterpriseIotResponse, ApiError> {
        self.require_tenant(tenant).await?;
        let s = &self.settings;
        let now = self.now();
        let window = CountWindow::ending(now, s.eiot_window_days);
        let range = window_days(&CountQuery {
            window,
            include_agent_managed: s.count_agent_managed,
        });
        let filter = CountFilter {
            categories: s.eiot_categories.clone(),
            include_agent_managed: s.count_agent_managed,
        };
        let per_site: Vec<Count> = self
            .store
            .site_counts(Some(tenant), range, &filter)
            .await?
            .into_iter()
            .filter(|c| c.tenant == tenant)
            .map(|c| c.count)
            .collect();
        // Merged across sites where the store can (a device at two sites counts once).
        let mut count = match self.store.tenant_count(tenant, range, &filter).await? {
            Some(c) => c,
            None => Count::sum(&per_site),
        };
        let (decisions, _) = self.decide(tenant).await?;
        let decision = decisions
            .iter()
            .find(|d| matches!(d.subject, Subject::EnterpriseIot { .. }));
        if let Some(d) = decision {
            // The decision may rest on an exact count fetched near a boundary.
            count = d.count;
        }
        let eiot = self
            .licences
            .tenant(tenant)
            .and_then(|t| t.enterprise_iot.clone())
            .unwrap_or_default();
        let allowance = eiot.e5_licences.saturating_mul(s.devices_per_e5);
        let covered = allowance.saturating_add(eiot.standalone_licences);
        let billed = decision.map(|d| d.outcome.billed).unwrap_or(count.value);
        Ok(EnterpriseIotResponse {
            tenant: tenant.to_string(),
            as_of: now,
            window_days: s.eiot_window_days,
            counted_categories: s
                .eiot_categories
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            devices: count.value,
            method: method(&count),
            error_bound: count.error_bound(s.error_band_sigmas),
            e5_licences: eiot.e5_licences,
            devices_per_e5: s.devices_per_e5,
            e5_allowance: allowance,
            standalone_licences: eiot.standalone_licences,
            covered,
            gap: i64::try_from(count.value).unwrap_or(i64::MAX)
                - i64::try_from(covered).unwrap_or(i64::MAX),
            licences_to_buy: billed.saturating_sub(covered),
            status: decision.map(|d| d.outcome.status.code().to_string()),
            status_detail: decision.map(|d| d.outcome.status.to_string()),
            notes: decision
                .map(|d| d.outcome.notes.clone())
                .unwrap_or_default(),
        })
    }

    /// The reconciler's decisions for a tenant: those of its latest run when the run
    /// history is kept, else computed now (see [`DecisionsResponse`]).
    pub async fn decisions(&self, tenant: &str, page: Page) -> Result<DecisionsResponse, ApiError> {
        self.require_tenant(tenant).await?;
        let stored = match &self.decision_history {
            Some(h) => h.latest_decisions(tenant).await?,
            None => None,
        };
        let (decided_at, source, decisions, states) = match stored {
            Some((at, decisions)) => (at, "latest_run", decisions, self.alert_states().await?),
            None => {
                let (decisions, states) = self.decide(tenant).await?;
                (self.now(), "computed_on_demand", decisions, states)
            }
        };
        let rows: Vec<DecisionRow> = decisions
            .iter()
            .map(|d| {
                let o = &d.outcome;
                let state = states
                    .get(&d.subject.key())
                    .filter(|st| st.status.transition_key() == o.status.transition_key());
                DecisionRow {
                    scope: scope(&d.subject),
                    site: d.subject.site().map(str::to_string),
                    label: d.subject.label(),
                    status: o.status.code().to_string(),
                    status_detail: o.status.to_string(),
                    devices: d.count.value,
                    method: method(&d.count),
                    error_bound: d.error_bound(&self.settings),
                    estimate: d.estimate.map(|e| e.value),
                    exact_fetched: d.exact_fetched,
                    uncertain: d.uncertain,
                    licensed_tier: o.licensed_tier.map(|t| t.to_string()),
                    licensed_capacity: o.licensed_capacity,
                    required_tier: o.required_tier.map(|t| t.to_string()),
                    billed: o.billed,
                    utilisation: d.utilisation,
                    coverage: coverage(&o.coverage),
                    held_by_hysteresis: o.held_by_hysteresis,
                    window_start: d.window.start,
                    window_end: d.window.end,
                    notes: o.notes.clone(),
                    status_since: state.map(|s| s.since),
                    last_alert_key: state.and_then(|s| s.last_alert_key.clone()),
                }
            })
            .collect();
        Ok(DecisionsResponse {
            tenant: tenant.to_string(),
            decided_at,
            source: source.into(),
            alert_state: self.alert_state.is_some(),
            total: rows.len(),
            offset: page.offset,
            limit: page.limit,
            decisions: page.slice(&rows),
        })
    }
}

/// Consecutive ISO weeks or calendar months covering `[from, to]`, clipped to it.
pub fn periods(from: NaiveDate, to: NaiveDate, g: Granularity) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let natural_end = match g {
            Granularity::Day => start,
            Granularity::Week => {
                start + Duration::days(6 - i64::from(start.weekday().num_days_from_monday()))
            }
            Granularity::Month => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1).expect("first of a month") - Duration::days(1)
            }
        };
        let end = natural_end.min(to);
        out.push((start, end));
        start = end + Duration::days(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn periods_are_iso_weeks_and_months_clipped_to_the_range() {
        // 2025-06-04 is a Wednesday.
        let w = periods(d("2025-06-04"), d("2025-06-20"), Granularity::Week);
        assert_eq!(
            w,
            vec![
                (d("2025-06-04"), d("2025-06-08")),
                (d("2025-06-09"), d("2025-06-15")),
                (d("2025-06-16"), d("2025-06-20"))
            ]
        );
        let m = periods(d("2024-12-15"), d("2025-02-10"), Granularity::Month);
        assert_eq!(
            m,
            vec![
                (d("2024-12-15"), d("2024-12-31")),
                (d("2025-01-01"), d("2025-01-31")),
                (d("2025-02-01"), d("2025-02-10"))
            ]
        );
        assert_eq!(
            periods(d("2025-01-01"), d("2025-01-03"), Granularity::Day).len(),
            3
        );
    }

    #[test]
    fn day_numbers_round_trip_and_are_bounded() {
        assert_eq!(date_of(0), d("1970-01-01"));
        assert_eq!(
            day_number(d("2025-06-01")).map(date_of),
            Ok(d("2025-06-01"))
        );
        assert!(day_number(d("1969-12-31")).is_err());
        assert!(day_number(d("2200-01-01")).is_err());
    }

    #[test]
    fn pages_and_ids_are_bounded() {
        assert!(Page::new(None, Some(0)).is_err());
        assert!(Page::new(None, Some(MAX_PAGE + 1)).is_err());
        assert_eq!(
            Page::new(Some(5), None).unwrap(),
            Page {
                offset: 5,
                limit: DEFAULT_PAGE
            }
        );
        assert!(check_id("site", "").is_err());
        assert!(check_id("site", "a\u{0}b").is_err());
        assert!(check_id("site", &"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(check_id("site", "plant north/3").is_ok());
    }
}
