//! A tenant's licence calendar: the dates ahead that someone must act on (a trial's
//! extension window and end, renewals, the end of a term, grace end and service stop,
//! retention end, an Enterprise IoT trial's end), each with the day to be alerted,
//! read from the same licence data and rules the decisions use.

use crate::count::{Count, CountWindow};
use crate::decision::{days_left, Coverage, Decision, Outcome, Status, Subject};
use crate::licence::{LicenceBook, OtLicence};
use crate::settings::Settings;
use crate::time::{minus_days, plus_days};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What happens on a calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CalendarEvent {
    /// A trial enters its final days: it can be extended from now on.
    TrialExtensionOpens,
    TrialEnds,
    /// A paid licence renews (recurring billing on).
    Renewal,
    /// A licence's term ends without renewal (fixed `end`, recurring billing off, or a
    /// cancellation).
    LicenceEnds,
    /// The tenant's grace period ends: the service stops.
    ServiceStops,
    /// Data retention ends: the tenant's data is deleted.
    RetentionEnds,
    EnterpriseIotTrialEnds,
}

impl CalendarEvent {
    /// What happens, in words, for notes and alert messages.
    pub fn describe(self) -> &'static str {
        match self {
            CalendarEvent::TrialExtensionOpens => "the trial's extension window opens",
            CalendarEvent::TrialEnds => "the trial ends",
            CalendarEvent::Renewal => {
                "the licence renews (turn recurring billing off before to stop it)"
            }
            CalendarEvent::LicenceEnds => "the licence ends",
            CalendarEvent::ServiceStops => "grace ends and the service stops",
            CalendarEvent::RetentionEnds => "data retention ends and the tenant's data is deleted",
            CalendarEvent::EnterpriseIotTrialEnds => {
                "the Enterprise IoT trial ends and its devices are no longer covered"
            }
        }
    }

    /// The upper-case name used in output (as serialized).
    pub fn code(self) -> &'static str {
        match self {
            CalendarEvent::TrialExtensionOpens => "TRIAL_EXTENSION_OPENS",
            CalendarEvent::TrialEnds => "TRIAL_ENDS",
            CalendarEvent::Renewal => "RENEWAL",
            CalendarEvent::LicenceEnds => "LICENCE_ENDS",
            CalendarEvent::ServiceStops => "SERVICE_STOPS",
            CalendarEvent::RetentionEnds => "RETENTION_ENDS",
            CalendarEvent::EnterpriseIotTrialEnds => "ENTERPRISE_IOT_TRIAL_ENDS",
        }
    }
}

/// One date ahead.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalendarEntry {
    pub at: DateTime<Utc>,
    pub event: CalendarEvent,
    pub tenant: String,
    pub site: Option<String>,
    /// The licence's reference, when it has one.
    pub licence: Option<String>,
    /// When to alert: `alert_days` before `at` (never before `now`).
    pub alert_at: DateTime<Utc>,
}

/// Every date after `now` and within `horizon_days` of it, of every tenant (or of
/// `tenant` only), in time order.
pub fn calendar(
    book: &LicenceBook,
    settings: &Settings,
    tenant: Option<&str>,
    now: DateTime<Utc>,
    horizon_days: u32,
    alert_days: u32,
) -> Vec<CalendarEntry> {
    let until = plus_days(now, horizon_days);
    let mut out = Vec::new();
    for t in book
        .tenants
        .iter()
        .filter(|t| tenant.is_none_or(|id| t.id == id))
    {
        let mut add = |at: DateTime<Utc>, event, site: Option<&str>, licence: Option<&str>| {
            if at > now && at <= until {
                out.push(CalendarEntry {
                    at,
                    event,
                    tenant: t.id.clone(),
                    site: site.map(str::to_string),
                    licence: licence.map(str::to_string),
                    alert_at: minus_days(at, alert_days).max(now),
                });
            }
        };
        let delay = settings.effective_delay();
        for site in &t.sites {
            for l in &site.licences {
                for (at, event) in licence_dates(l, settings, now, delay) {
                    add(at, event, Some(&site.id), l.id.as_deref());
                }
            }
        }
        // While a licence renews its end is the far future, past any horizon.
        if let Some(end) = t.last_licence_end(delay) {
            let stop = settings.service_stop(end);
            add(stop, CalendarEvent::ServiceStops, None, None);
            add(
                settings.retention_end(stop),
                CalendarEvent::RetentionEnds,
                None,
                None,
            );
        }
        if let Some(trial) = t.enterprise_iot.as_ref().and_then(|e| e.trial.as_ref()) {
            add(
                trial.end(),
                CalendarEvent::EnterpriseIotTrialEnds,
                None,
                None,
            );
        }
    }
    out.sort_by(|a, b| {
        (a.at, a.event, &a.tenant, &a.site).cmp(&(b.at, b.event, &b.tenant, &b.site))
    });
    out
}

/// One decision per calendar date within `settings.calendar_alert_days` of `now`: the
/// subject is the date itself ([`Subject::Date`]), its status [`Status::DateAhead`], so the
/// reconciler alerts on it once, like any first-seen status, and never again as the days
/// count down; the next renewal a year on is another date, alerted in its turn.
pub fn date_decisions(
    book: &LicenceBook,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let days = settings.calendar_alert_days;
    if days == 0 {
        return Vec::new();
    }
    calendar(book, settings, None, now, days, days)
        .into_iter()
        .map(|e| {
            let mut note = format!(
                "{} on {}",
                e.event.describe(),
                e.at.format("%Y-%m-%d %H:%M UTC")
            );
            if let Some(licence) = &e.licence {
                note.push_str(&format!(" (licence {licence})"));
            }
            Decision {
                subject: Subject::Date {
                    tenant: e.tenant,
                    site: e.site,
                    event: e.event,
                    at: e.at,
                },
                window: CountWindow {
                    start: now,
                    end: now,
                },
                count: Count::exact(0),
                estimate: None,
                exact_fetched: false,
                uncertain: false,
                utilisation: None,
                outcome: Outcome {
                    status: Status::DateAhead {
                        days_left: days_left(e.at, now),
                    },
                    coverage: Coverage::None,
                    licensed_tier: None,
                    licensed_capacity: None,
                    required_tier: None,
                    billed: 0,
                    held_by_hysteresis: false,
                    notes: vec![note],
                },
                decided_at: now,
            }
        })
        .collect()
}

/// The dates of one OT licence after `now`.
fn licence_dates(
    l: &OtLicence,
    settings: &Settings,
    now: DateTime<Utc>,
    delay: Duration,
) -> Vec<(DateTime<Utc>, CalendarEvent)> {
    if l.is_trial() {
        let end = l.term_end();
        return vec![
            (
                minus_days(end, settings.trial_ending_days),
                CalendarEvent::TrialExtensionOpens,
            ),
            (end, CalendarEvent::TrialEnds),
        ];
    }
    match l.next_renewal(now) {
        Some(renewal) => vec![(renewal, CalendarEvent::Renewal)],
        None => vec![(l.effective_until(delay), CalendarEvent::LicenceEnds)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::test_support::{book, lic, site_doc, t};

    fn events(entries: &[CalendarEntry]) -> Vec<(String, CalendarEvent)> {
        entries
            .iter()
            .map(|e| (e.at.to_rfc3339(), e.event))
            .collect()
    }

    #[test]
    fn codes_are_the_serialized_names() {
        use CalendarEvent::*;
        for e in [
            TrialExtensionOpens,
            TrialEnds,
            Renewal,
            LicenceEnds,
            ServiceStops,
            RetentionEnds,
            EnterpriseIotTrialEnds,
        ] {
            assert_eq!(serde_json::to_value(e).unwrap(), e.code());
        }
    }

    #[test]
    fn a_date_within_the_alert_days_is_a_date_ahead_decision() {
        let b = book(&site_doc(&lic("L", "paid", "")));
        let renewal = t("2027-01-01T00:00:00Z");
        let settings = Settings::default();
        // 15 days before: outside the default 14.
        assert!(date_decisions(&b, &settings, t("2026-12-17T00:00:00Z")).is_empty());
        let d = date_decisions(&b, &settings, t("2026-12-20T12:00:00Z"));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].subject,
            Subject::Date {
                tenant: "acme".into(),
                site: Some("p1".into()),
                event: CalendarEvent::Renewal,
                at: renewal,
            }
        );
        assert_eq!(*d[0].status(), Status::DateAhead { days_left: 12 });
        assert!(
            d[0].outcome.notes[0].contains("renews")
                && d[0].outcome.notes[0].contains("2027-01-01")
        );
        assert!(
            !d[0].status().is_possibly_over(),
            "a date never fails --fail-on"
        );
        // The same date a day later is the same subject: one alert, not one a day.
        let later = date_decisions(&b, &settings, t("2026-12-21T12:00:00Z"));
        assert_eq!(later[0].subject.key(), d[0].subject.key());
        assert_eq!(
            later[0].status().transition_key(),
            d[0].status().transition_key()
        );
        // Past the date the next renewal is a year away: nothing.
        assert!(date_decisions(&b, &settings, t("2027-01-01T00:00:01Z")).is_empty());
        let off = Settings {
            calendar_alert_days: 0,
            ..Settings::default()
        };
        assert!(date_decisions(&b, &off, t("2026-12-20T12:00:00Z")).is_empty());
    }

    #[test]
    fn a_renewing_licence_shows_its_next_renewal_and_no_service_stop() {
        let b = book(&site_doc(&lic("L", "paid", "")));
        let now = t("2026-03-01T00:00:00Z");
        let c = calendar(&b, &Settings::default(), None, now, 365, 14);
        assert_eq!(
            events(&c),
            [(
                "2027-01-01T00:00:00+00:00".to_string(),
                CalendarEvent::Renewal
            )]
        );
        assert_eq!(c[0].alert_at, t("2026-12-18T00:00:00Z"));
        assert_eq!(c[0].site.as_deref(), Some("p1"));
    }

    #[test]
    fn a_licence_that_ends_shows_its_end_then_service_stop_and_retention_end() {
        let b = book(&site_doc(&lic("L", "paid", "recurring_billing = false")));
        let now = t("2025-12-01T00:00:00Z");
        let c = calendar(&b, &Settings::default(), Some("acme"), now, 365, 14);
        assert_eq!(
            events(&c),
            [
                (
                    "2026-01-01T00:00:00+00:00".to_string(),
                    CalendarEvent::LicenceEnds
                ),
                (
                    "2026-01-31T00:00:00+00:00".to_string(),
                    CalendarEvent::ServiceStops
                ),
                (
                    "2026-05-01T00:00:00+00:00".to_string(),
                    CalendarEvent::RetentionEnds
                ),
            ]
        );
        // An alert is never due before now.
        assert_eq!(c[0].alert_at, t("2025-12-18T00:00:00Z"));
        let soon = calendar(
            &b,
            &Settings::default(),
            None,
            t("2025-12-25T00:00:00Z"),
            365,
            14,
        );
        assert_eq!(soon[0].alert_at, t("2025-12-25T00:00:00Z"));
        // The horizon cuts what lies beyond it; another tenant has no dates.
        assert_eq!(
            calendar(&b, &Settings::default(), None, now, 40, 14).len(),
            1
        );
        assert!(calendar(&b, &Settings::default(), Some("other"), now, 365, 14).is_empty());
    }

    #[test]
    fn a_trial_shows_its_extension_window_and_end() {
        let b = book(&site_doc(&lic("L", "trial", "trial_days = 60")));
        let c = calendar(
            &b,
            &Settings::default(),
            None,
            t("2025-01-10T00:00:00Z"),
            365,
            7,
        );
        let got = events(&c);
        assert_eq!(
            got[..2],
            [
                (
                    "2025-02-15T00:00:00+00:00".to_string(),
                    CalendarEvent::TrialExtensionOpens
                ),
                (
                    "2025-03-02T00:00:00+00:00".to_string(),
                    CalendarEvent::TrialEnds
                ),
            ]
        );
        // With nothing bought, the service stops 30 days after the trial.
        assert_eq!(
            got[2],
            (
                "2025-04-01T00:00:00+00:00".to_string(),
                CalendarEvent::ServiceStops
            )
        );
    }
}
