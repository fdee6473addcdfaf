//! A site's trend and the projected crossing of its next boundary.

use super::{
    check_id, date_of, method, ForecastRequest, Planner, DEFAULT_HISTORY_DAYS,
    DEFAULT_HORIZON_DAYS, MAX_HISTORY_DAYS, MAX_HORIZON_DAYS, MIN_HISTORY_DAYS,
};
use crate::error::ApiError;
use crate::model::*;
use chrono::{Duration, NaiveDate};
use sitetally_licensing::forecast::{crossing, Trend, MIN_POINTS};
use sitetally_store::DayRange;
use std::collections::BTreeMap;

impl Planner {
    /// A site's trend and the projected crossing of its next boundary.
    pub async fn forecast(
        &self,
        tenant: &str,
        site: &str,
        req: ForecastRequest,
    ) -> Result<ForecastResponse, ApiError> {
        check_id("tenant", tenant)?;
        check_id("site", site)?;
        let (history, horizon) = bounded(req)?;
        self.require_site(tenant, site).await?;
        let today = self.today();
        let totals = self.daily_totals(tenant, site, today, history).await?;
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
        let peak = totals.values().copied().max().unwrap_or(0);
        let current = self.current_view(tenant, site, peak).await?;
        let (target, target_kind, boundaries) = self.targets(tenant, &current, peak);
        let trend = Trend::fit(&points);
        let outlook = Outlook::of(trend.as_ref(), target.as_ref(), today, history, horizon);
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
            outlook: outlook.kind.to_string(),
            crossing_date: outlook.crossing_date,
            earliest: outlook.earliest,
            latest: outlook.latest,
            summary: outlook.summary,
            history: history_points,
        })
    }

    /// Distinct devices of the billing (OT) categories per day over the history.
    async fn daily_totals(
        &self,
        tenant: &str,
        site: &str,
        today: u16,
        history: u32,
    ) -> Result<BTreeMap<u16, u64>, ApiError> {
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
        Ok(totals)
    }

    /// The site's decision now, as every other surface shows it.
    async fn current_view(
        &self,
        tenant: &str,
        site: &str,
        peak: u64,
    ) -> Result<CurrentView, ApiError> {
        let (decisions, _) = self.decide(tenant).await?;
        let decision = decisions.iter().find(|d| d.subject.site() == Some(site));
        Ok(match decision {
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
                devices: peak,
                method: "estimated".into(),
                error_bound: 0,
                licensed_tier: None,
                licensed_capacity: None,
                status: "NO_OT_DECISION".into(),
            },
        })
    }

    /// The boundary to forecast (licensed capacity while within it, else the next tier
    /// boundary), what kind it is, and the catalogue's boundaries up to beyond it.
    fn targets(
        &self,
        tenant: &str,
        current: &CurrentView,
        peak: u64,
    ) -> (Option<Boundary>, Option<String>, Vec<Boundary>) {
        let cat = self.catalogue(tenant);
        let policy = self.settings.above_xl;
        let boundary = |b: u64| Boundary {
            devices: b,
            label: cat.required(b, policy).to_string(),
        };
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
                    next.map(boundary),
                    next.map(|_| "tier_boundary".to_string()),
                )
            }
        };
        let top = target
            .as_ref()
            .map(|b| b.devices)
            .unwrap_or(0)
            .max(peak)
            .max(devices);
        let boundaries: Vec<Boundary> = cat
            .boundaries(top, policy)
            .into_iter()
            .filter(|&b| b <= top.saturating_mul(2).max(100))
            .take(50)
            .map(boundary)
            .collect();
        (target, target_kind, boundaries)
    }
}

/// The requested history and horizon, within their bounds (422 outside them).
fn bounded(req: ForecastRequest) -> Result<(u32, u32), ApiError> {
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
    Ok((history, horizon))
}

/// Whether and when the trend crosses the target, in dates and in words.
struct Outlook {
    kind: &'static str,
    crossing_date: Option<NaiveDate>,
    earliest: Option<NaiveDate>,
    latest: Option<NaiveDate>,
    summary: String,
}

impl Outlook {
    fn of(
        trend: Option<&Trend>,
        target: Option<&Boundary>,
        today: u16,
        history: u32,
        horizon: u32,
    ) -> Self {
        let date_at = |x: i64| date_of(today) + Duration::days(x);
        let none = |kind, summary| Outlook {
            kind,
            crossing_date: None,
            earliest: None,
            latest: None,
            summary,
        };
        let (t, b) = match (trend, target) {
            (None, _) => {
                return none(
                    "insufficient_data",
                    format!(
                        "fewer than {MIN_POINTS} days with devices in the last {history} days: no trend"
                    ),
                )
            }
            (Some(_), None) => return none("not_within_horizon", "no boundary to cross".into()),
            (Some(t), Some(b)) => (t, b),
        };
        let c = crossing(t, b.devices as f64, i64::from(horizon));
        let earliest = c.earliest.map(date_at);
        match c.day {
            Some(day) => Outlook {
                kind: "crosses",
                crossing_date: Some(date_at(day)),
                earliest,
                latest: c.latest.map(date_at),
                summary: format!(
                    "at {:+.1} devices/day the trend passes {} ({}) on {} (95% range {} to {})",
                    t.slope,
                    b.devices,
                    b.label,
                    date_at(day),
                    earliest.map(|d| d.to_string()).unwrap_or_else(|| "?".into()),
                    c.latest
                        .map(date_at)
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "after the horizon".into()),
                ),
            },
            None => Outlook {
                kind: "not_within_horizon",
                crossing_date: None,
                earliest,
                latest: None,
                summary: format!(
                    "at {:+.1} devices/day the trend stays at or below {} ({}) for the next {horizon} days",
                    t.slope, b.devices, b.label
                ),
            },
        }
    }
}
