//! The questions capacity planners ask, answered over any [`Store`] and the licence
//! book. The HTTP handlers and the CLI both call [`Planner`]; neither has logic of its
//! own.
//!
//! Every store call passes tenant and site as bound parameters (the `Store` trait's
//! implementations bind them; nothing here builds SQL).

//!
//! Layout: `request` (bounds, pages, dates and ids of a request), `counts` (counts over
//! time), `forecast` (trend and crossing), `decisions` (sites, Enterprise IoT, decisions
//! and alerts, all from the licensing engine's decisions). This file holds the planner's
//! state and what every question shares: the clock, the tenant and site lookups.

mod counts;
mod decisions;
mod forecast;
mod request;

use crate::model::{CalendarResponse, CalendarRow};
use request::day_of_time;
pub use request::{
    check_id, date_of, date_range, day_number, periods, CountsRequest, ForecastRequest, Page,
    DEFAULT_HISTORY_DAYS, DEFAULT_HORIZON_DAYS, DEFAULT_PAGE, DEFAULT_RANGE_DAYS,
    KNOWN_LOOKBACK_DAYS, MAX_HISTORY_DAYS, MAX_HORIZON_DAYS, MAX_ID_LEN, MAX_OFFSET, MAX_PAGE,
    MAX_RANGE_DAYS, MIN_HISTORY_DAYS,
};

use crate::error::ApiError;
use chrono::{DateTime, Utc};
use sitetally_licensing::count::{Count, CountMethod};
use sitetally_licensing::decision::{Coverage, Decision, Subject};
use sitetally_licensing::engine::{decide_all, PreviousStatuses};
use sitetally_licensing::{LicenceBook, Settings, SubjectState, TierCatalogue};
use sitetally_store::counts::StoreCounts;
use sitetally_store::history::{AlertLog, AlertStateStore, DecisionHistory};
use sitetally_store::{CountFilter, DayRange, Store};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

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
        Subject::Date { .. } => "date",
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
    /// The tenant's licence calendar for the next `days` days, alerts `alert_days` before
    /// each date (the rules of `sitetally_licensing::calendar`).
    pub async fn calendar(
        &self,
        tenant: &str,
        days: u32,
        alert_days: u32,
    ) -> Result<CalendarResponse, ApiError> {
        self.require_tenant(tenant).await?;
        let from = self.now();
        let entries = sitetally_licensing::calendar::calendar(
            &self.licences,
            &self.settings,
            Some(tenant),
            from,
            days,
            alert_days,
        );
        Ok(CalendarResponse {
            tenant: tenant.to_string(),
            from,
            days,
            alert_days,
            entries: entries
                .into_iter()
                .map(|e| CalendarRow {
                    at: e.at,
                    event: e.event.code().to_string(),
                    site: e.site,
                    licence: e.licence,
                    alert_at: e.alert_at,
                })
                .collect(),
        })
    }

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

    /// Counts over time follow the same agent-managed setting as decisions (DESIGN §3).
    fn daily_filter(&self) -> CountFilter {
        CountFilter {
            categories: Vec::new(),
            include_agent_managed: self.settings.count_agent_managed,
        }
    }
}
