//! What the API answers: JSON bodies (with their OpenAPI schemas) and their flat CSV /
//! table form ([`Tabular`]).

use crate::table::{opt, Tabular};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn pct(u: &Option<f64>) -> String {
    u.map(|u| format!("{:.1}%", u * 100.0)).unwrap_or_default()
}

fn ratio(u: &Option<f64>) -> String {
    u.map(|u| format!("{u:.4}")).unwrap_or_default()
}

/// Tenants the caller may read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TenantsResponse {
    pub tenants: Vec<String>,
}

impl Tabular for TenantsResponse {
    fn header(&self) -> Vec<&'static str> {
        vec!["tenant"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.tenants.iter().map(|t| vec![t.clone()]).collect()
    }
}

/// One OT site: its count over the billing window and its licence status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SiteRow {
    pub site: String,
    /// Distinct billable devices over the billing window.
    pub devices: u64,
    /// `exact` or `estimated` (sketch estimate).
    pub method: String,
    /// Half-width of the estimate's error band in devices (error_band_sigmas x sigma;
    /// 0 when exact).
    pub error_bound: u64,
    /// True when the estimate straddled a tier boundary and the exact count was fetched.
    pub exact_fetched: bool,
    /// True when the estimate straddled a boundary and no exact count could be had.
    pub uncertain: bool,
    /// Tier holding in effect, e.g. `L` or `2xXL`; null when unlicensed.
    pub licensed_tier: Option<String>,
    /// Devices the licences in effect cover.
    pub licensed_capacity: Option<u64>,
    /// The smallest tier holding covering the count.
    pub required_tier: Option<String>,
    /// devices / licensed capacity (1.0 = full); null without a capacity.
    pub utilisation: Option<f64>,
    /// WITHIN_TIER, NEAR_LIMIT, OVER_TIER, POSSIBLY_OVER, UNLICENSED,
    /// TRIAL_OVER_ALLOWANCE, TRIAL_ENDING, GRACE_PERIOD, SERVICE_STOPPED,
    /// RETENTION_ENDING, RETENTION_OVER, STANDALONE_NEEDED, COMMITMENT_EXCEEDED,
    /// BILLED_NO_PLAN.
    pub status: String,
    /// The status with its detail, e.g. `OVER_TIER (buy XL)`.
    pub status_detail: String,
    /// paid, trial, legacy_plan or none.
    pub coverage: String,
    pub notes: Vec<String>,
}

/// The OT sites of a tenant (one page).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SitesResponse {
    pub tenant: String,
    pub as_of: DateTime<Utc>,
    /// Billing window in days (devices inactive for longer do not count).
    pub window_days: u32,
    /// Sites in total (all pages).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub sites: Vec<SiteRow>,
}

impl Tabular for SitesResponse {
    fn header(&self) -> Vec<&'static str> {
        vec![
            "tenant",
            "site",
            "devices",
            "method",
            "error_bound",
            "licensed_tier",
            "licensed_capacity",
            "required_tier",
            "utilisation",
            "status",
            "status_detail",
            "coverage",
            "notes",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.sites
            .iter()
            .map(|s| {
                vec![
                    self.tenant.clone(),
                    s.site.clone(),
                    s.devices.to_string(),
                    s.method.clone(),
                    s.error_bound.to_string(),
                    opt(&s.licensed_tier),
                    opt(&s.licensed_capacity),
                    opt(&s.required_tier),
                    ratio(&s.utilisation),
                    s.status.clone(),
                    s.status_detail.clone(),
                    s.coverage.clone(),
                    s.notes.join("; "),
                ]
            })
            .collect()
    }
}

/// Human table for the CLI: fewer columns, utilisation in percent.
pub struct SitesTable<'a>(pub &'a SitesResponse);

impl Tabular for SitesTable<'_> {
    fn header(&self) -> Vec<&'static str> {
        vec![
            "site",
            "devices",
            "method",
            "licensed",
            "required",
            "utilisation",
            "status",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.0
            .sites
            .iter()
            .map(|s| {
                let devices = if s.error_bound > 0 {
                    format!("{} ±{}", s.devices, s.error_bound)
                } else {
                    s.devices.to_string()
                };
                vec![
                    s.site.clone(),
                    devices,
                    s.method.clone(),
                    s.licensed_tier.clone().unwrap_or_else(|| "-".into()),
                    s.required_tier.clone().unwrap_or_else(|| "-".into()),
                    if s.utilisation.is_some() {
                        pct(&s.utilisation)
                    } else {
                        "-".into()
                    },
                    s.status_detail.clone(),
                ]
            })
            .collect()
    }
}

/// Period length of a counts series.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    #[default]
    Day,
    /// ISO weeks (Monday to Sunday), clipped to the range.
    Week,
    /// Calendar months, clipped to the range.
    Month,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Day => "day",
            Granularity::Week => "week",
            Granularity::Month => "month",
        }
    }
}

/// Distinct devices of one category (or `ALL`) in one period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeriodCount {
    /// First day of the period (inclusive).
    pub start: NaiveDate,
    /// Last day of the period (inclusive).
    pub end: NaiveDate,
    /// OT, IOT, NETWORK, COMPUTERS_MOBILE, UNKNOWN, or ALL (every category, each device
    /// once).
    pub category: String,
    pub devices: u64,
    /// `exact` or `estimated`.
    pub method: String,
    /// One-sigma error in devices (0 when exact).
    pub sigma: f64,
    /// Half-width of the error band (error_band_sigmas x sigma, rounded up).
    pub error_bound: u64,
}

/// A site's distinct-device counts over a date range.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CountsResponse {
    pub tenant: String,
    pub site: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub granularity: Granularity,
    /// How the counts were computed (per-day sketches, or sketches merged per period).
    pub source: String,
    /// One row per period and category seen, plus an `ALL` row for every period.
    pub counts: Vec<PeriodCount>,
}

impl Tabular for CountsResponse {
    fn header(&self) -> Vec<&'static str> {
        vec![
            "tenant",
            "site",
            "start",
            "end",
            "category",
            "devices",
            "method",
            "sigma",
            "error_bound",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.counts
            .iter()
            .map(|c| {
                vec![
                    self.tenant.clone(),
                    self.site.clone(),
                    c.start.to_string(),
                    c.end.to_string(),
                    c.category.clone(),
                    c.devices.to_string(),
                    c.method.clone(),
                    format!("{:.1}", c.sigma),
                    c.error_bound.to_string(),
                ]
            })
            .collect()
    }
}

/// A tier boundary to draw: counts above `devices` need more than `label`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Boundary {
    pub devices: u64,
    /// The tier holding that covers up to `devices`, e.g. `L`, `XL`, `2xXL`.
    pub label: String,
}

/// One day of history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DayPoint {
    pub date: NaiveDate,
    pub devices: u64,
    /// Whether the fit used this day (today is left out while it is incomplete).
    pub fitted: bool,
}

/// The least-squares line through the daily counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TrendView {
    /// Devices per day.
    pub slope_per_day: f64,
    /// The line's value today.
    pub today: f64,
    pub r_squared: f64,
    /// Residual standard deviation in devices.
    pub residual_sigma: f64,
    pub points: usize,
}

/// Where a site stands today.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrentView {
    /// Distinct devices over the billing window.
    pub devices: u64,
    pub method: String,
    pub error_bound: u64,
    pub licensed_tier: Option<String>,
    pub licensed_capacity: Option<u64>,
    pub status: String,
}

/// A site's trend and when it crosses its next boundary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForecastResponse {
    pub tenant: String,
    pub site: String,
    pub as_of: NaiveDate,
    pub history_days: u32,
    pub horizon_days: u32,
    pub current: CurrentView,
    /// Tier boundaries of the tenant's catalogue up to beyond the target.
    pub boundaries: Vec<Boundary>,
    /// The boundary forecast: the licensed capacity while the site is within it,
    /// otherwise the next tier boundary above its count.
    pub target: Option<Boundary>,
    /// `licensed_capacity` or `tier_boundary`.
    pub target_kind: Option<String>,
    /// null with fewer than 3 days of data.
    pub trend: Option<TrendView>,
    /// `crosses`, `not_within_horizon` or `insufficient_data`.
    pub outlook: String,
    /// First day the trend line is above the target.
    pub crossing_date: Option<NaiveDate>,
    /// First day the upper edge of the 95% band is above the target.
    pub earliest: Option<NaiveDate>,
    /// First day the lower edge of the 95% band is above the target (null: possibly
    /// after the horizon).
    pub latest: Option<NaiveDate>,
    /// The outlook in words.
    pub summary: String,
    /// Daily distinct devices (billing categories) over the history.
    pub history: Vec<DayPoint>,
}

impl Tabular for ForecastResponse {
    fn header(&self) -> Vec<&'static str> {
        vec![
            "tenant",
            "site",
            "as_of",
            "devices",
            "licensed_tier",
            "status",
            "target",
            "target_kind",
            "slope_per_day",
            "outlook",
            "crossing_date",
            "earliest",
            "latest",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        vec![vec![
            self.tenant.clone(),
            self.site.clone(),
            self.as_of.to_string(),
            self.current.devices.to_string(),
            opt(&self.current.licensed_tier),
            self.current.status.clone(),
            self.target
                .as_ref()
                .map(|b| b.devices.to_string())
                .unwrap_or_default(),
            opt(&self.target_kind),
            self.trend
                .as_ref()
                .map(|t| format!("{:.2}", t.slope_per_day))
                .unwrap_or_default(),
            self.outlook.clone(),
            opt(&self.crossing_date),
            opt(&self.earliest),
            opt(&self.latest),
        ]]
    }
}

/// A tenant's Enterprise IoT coverage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnterpriseIotResponse {
    pub tenant: String,
    pub as_of: DateTime<Utc>,
    /// Enterprise IoT billing window in days.
    pub window_days: u32,
    /// Categories counted (Computers & Mobile never are).
    pub counted_categories: Vec<String>,
    /// Distinct Enterprise IoT devices over the window, all sites.
    pub devices: u64,
    pub method: String,
    pub error_bound: u64,
    pub e5_licences: u64,
    pub devices_per_e5: u64,
    /// e5_licences x devices_per_e5.
    pub e5_allowance: u64,
    pub standalone_licences: u64,
    /// e5_allowance + standalone_licences.
    pub covered: u64,
    /// devices - covered (negative: spare coverage).
    pub gap: i64,
    /// Standalone licences to buy (after the configured rounding).
    pub licences_to_buy: u64,
    /// The reconciler's status; null when the tenant has no Enterprise IoT coverage in
    /// the licence file.
    pub status: Option<String>,
    pub status_detail: Option<String>,
    pub notes: Vec<String>,
}

impl Tabular for EnterpriseIotResponse {
    fn header(&self) -> Vec<&'static str> {
        vec![
            "tenant",
            "devices",
            "method",
            "error_bound",
            "e5_licences",
            "e5_allowance",
            "standalone_licences",
            "covered",
            "gap",
            "licences_to_buy",
            "status",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        vec![vec![
            self.tenant.clone(),
            self.devices.to_string(),
            self.method.clone(),
            self.error_bound.to_string(),
            self.e5_licences.to_string(),
            self.e5_allowance.to_string(),
            self.standalone_licences.to_string(),
            self.covered.to_string(),
            self.gap.to_string(),
            self.licences_to_buy.to_string(),
            opt(&self.status_detail),
        ]]
    }
}

/// One reconciliation decision.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionRow {
    /// ot_site, enterprise_iot, legacy_ot_plan, legacy_eiot_plan, or date (a licence-calendar
    /// date ahead, status DATE_AHEAD).
    pub scope: String,
    /// The site (ot_site, and a date of a site's licence).
    pub site: Option<String>,
    /// The site, or what a tenant-wide decision is about.
    pub label: String,
    pub status: String,
    pub status_detail: String,
    pub devices: u64,
    pub method: String,
    pub error_bound: u64,
    /// The estimate an exact count replaced, if one did.
    pub estimate: Option<u64>,
    pub exact_fetched: bool,
    pub uncertain: bool,
    pub licensed_tier: Option<String>,
    pub licensed_capacity: Option<u64>,
    pub required_tier: Option<String>,
    /// The number compared with the capacity after rounding.
    pub billed: u64,
    pub utilisation: Option<f64>,
    pub coverage: String,
    pub held_by_hysteresis: bool,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub notes: Vec<String>,
    /// Since when the reconciler has recorded this status (from its alert state file).
    pub status_since: Option<DateTime<Utc>>,
    /// Idempotency key of the last alert raised for the subject (alert state file).
    pub last_alert_key: Option<String>,
}

/// A tenant's latest decisions.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionsResponse {
    pub tenant: String,
    pub decided_at: DateTime<Utc>,
    /// `latest_run`: the decisions of the reconciler's latest run that decided on this
    /// tenant (ClickHouse `reconciliation_runs`, or the embedded store's `latest_run`
    /// table), `decided_at` being that run's time. `computed_on_demand`: no run is
    /// recorded, so the reconciler's own logic decided now over the store, with previous
    /// statuses (hysteresis) from its alert state when one is configured.
    pub source: String,
    /// Whether the reconciler's alert state was read (hysteresis and status_since).
    pub alert_state: bool,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub decisions: Vec<DecisionRow>,
}

impl Tabular for DecisionsResponse {
    fn header(&self) -> Vec<&'static str> {
        vec![
            "tenant",
            "scope",
            "label",
            "status",
            "status_detail",
            "devices",
            "method",
            "error_bound",
            "exact_fetched",
            "uncertain",
            "licensed_tier",
            "licensed_capacity",
            "required_tier",
            "billed",
            "utilisation",
            "coverage",
            "status_since",
            "notes",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.decisions
            .iter()
            .map(|d| {
                vec![
                    self.tenant.clone(),
                    d.scope.clone(),
                    d.label.clone(),
                    d.status.clone(),
                    d.status_detail.clone(),
                    d.devices.to_string(),
                    d.method.clone(),
                    d.error_bound.to_string(),
                    d.exact_fetched.to_string(),
                    d.uncertain.to_string(),
                    opt(&d.licensed_tier),
                    opt(&d.licensed_capacity),
                    opt(&d.required_tier),
                    d.billed.to_string(),
                    ratio(&d.utilisation),
                    d.coverage.clone(),
                    d.status_since.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    d.notes.join("; "),
                ]
            })
            .collect()
    }
}

/// Liveness / readiness answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `ready`.
    pub status: String,
}

/// A tenant's licence calendar: the dates ahead, each with the day to alert.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CalendarResponse {
    pub tenant: String,
    /// The dates are after this instant (the server's now).
    pub from: DateTime<Utc>,
    /// How far ahead, in days.
    pub days: u32,
    /// Alerts fall this many days before each date (never before `from`).
    pub alert_days: u32,
    pub entries: Vec<CalendarRow>,
}

/// One date ahead.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CalendarRow {
    pub at: DateTime<Utc>,
    /// TRIAL_EXTENSION_OPENS, TRIAL_ENDS, RENEWAL, LICENCE_ENDS, SERVICE_STOPS,
    /// RETENTION_ENDS or ENTERPRISE_IOT_TRIAL_ENDS.
    pub event: String,
    /// The site of a site licence's date; none for tenant-wide dates.
    pub site: Option<String>,
    /// The licence's reference, when the licence file gives one.
    pub licence: Option<String>,
    pub alert_at: DateTime<Utc>,
}

impl Tabular for CalendarResponse {
    fn header(&self) -> Vec<&'static str> {
        vec!["tenant", "at", "event", "site", "licence", "alert_at"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.entries
            .iter()
            .map(|e| {
                vec![
                    self.tenant.clone(),
                    e.at.to_rfc3339(),
                    e.event.clone(),
                    e.site.clone().unwrap_or_default(),
                    e.licence.clone().unwrap_or_default(),
                    e.alert_at.to_rfc3339(),
                ]
            })
            .collect()
    }
}

/// Alerts the reconciler raised for a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertsResponse {
    pub tenant: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// False when this server was given no alert log (ClickHouse keeps the `alert_log`
    /// table, the embedded store an `alert_log` table in its database): the list is
    /// then empty for want of a source.
    pub alert_log: bool,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub alerts: Vec<AlertRow>,
}

/// One alert (a status transition), newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AlertRow {
    pub raised_at: DateTime<Utc>,
    pub idempotency_key: String,
    /// Null for tenant-wide subjects (Enterprise IoT, legacy plans).
    pub site: Option<String>,
    pub old_status: String,
    pub new_status: String,
    pub devices: u64,
    /// `exact` or `estimated`.
    pub method: String,
    pub error_bound: u64,
    pub licensed_tier: Option<String>,
    pub required_tier: Option<String>,
    pub message: String,
}

impl Tabular for AlertsResponse {
    fn header(&self) -> Vec<&'static str> {
        vec![
            "tenant",
            "raised_at",
            "idempotency_key",
            "site",
            "old_status",
            "new_status",
            "devices",
            "method",
            "error_bound",
            "licensed_tier",
            "required_tier",
            "message",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.alerts
            .iter()
            .map(|a| {
                vec![
                    self.tenant.clone(),
                    a.raised_at.to_rfc3339(),
                    a.idempotency_key.clone(),
                    opt(&a.site),
                    a.old_status.clone(),
                    a.new_status.clone(),
                    a.devices.to_string(),
                    a.method.clone(),
                    a.error_bound.to_string(),
                    opt(&a.licensed_tier),
                    opt(&a.required_tier),
                    a.message.clone(),
                ]
            })
            .collect()
    }
}
