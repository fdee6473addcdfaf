//! The licensing engine's decisions as planners see them: sites, Enterprise IoT,
//! decisions and the alerts raised on them.

use super::{coverage, date_range, method, method_name, scope, Page, Planner};
use crate::error::ApiError;
use crate::model::*;
use chrono::NaiveDate;
use sitetally_licensing::count::{Count, CountQuery, CountWindow};
use sitetally_licensing::decision::{Decision, Subject};
use sitetally_store::counts::window_days;
use sitetally_store::CountFilter;

impl Planner {
    /// Alerts raised for `tenant` from `from` to `to` (UTC days, inclusive), newest first.
    pub async fn alerts(
        &self,
        tenant: &str,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        page: Page,
    ) -> Result<AlertsResponse, ApiError> {
        self.require_tenant(tenant).await?;
        let (from, to) = date_range(from, to, self.now().date_naive())?;
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
