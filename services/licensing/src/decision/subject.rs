//! Subjects: what a decision is about (an OT site, or a tenant's Enterprise IoT
//! coverage, or one of its legacy plans), and the key it is stored under.

use crate::calendar::CalendarEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a decision applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Subject {
    /// One OT site.
    OtSite { tenant: String, site: String },
    /// A tenant's Enterprise IoT devices against E5 + standalone licences.
    EnterpriseIot { tenant: String },
    /// A tenant's legacy committed-device OT plan.
    LegacyOtPlan { tenant: String, plan: String },
    /// A tenant's legacy Enterprise IoT plan.
    LegacyEiotPlan { tenant: String },
    /// A date of the tenant's licence calendar coming up (of a site's licence, or
    /// tenant-wide): alerted once, `calendar_alert_days` before it.
    Date {
        tenant: String,
        site: Option<String>,
        event: CalendarEvent,
        at: DateTime<Utc>,
    },
}

impl Subject {
    pub fn tenant(&self) -> &str {
        match self {
            Subject::OtSite { tenant, .. }
            | Subject::EnterpriseIot { tenant }
            | Subject::LegacyOtPlan { tenant, .. }
            | Subject::LegacyEiotPlan { tenant }
            | Subject::Date { tenant, .. } => tenant,
        }
    }

    /// The site, for site decisions; None for tenant-wide ones.
    pub fn site(&self) -> Option<&str> {
        match self {
            Subject::OtSite { site, .. } => Some(site),
            Subject::Date { site, .. } => site.as_deref(),
            _ => None,
        }
    }

    /// Stable storage key (unit separators cannot occur in ids read from files).
    pub fn key(&self) -> String {
        match self {
            Subject::OtSite { tenant, site } => format!("{tenant}\u{1f}ot\u{1f}{site}"),
            Subject::EnterpriseIot { tenant } => format!("{tenant}\u{1f}eiot"),
            Subject::LegacyOtPlan { tenant, plan } => {
                format!("{tenant}\u{1f}legacy-ot\u{1f}{plan}")
            }
            Subject::LegacyEiotPlan { tenant } => format!("{tenant}\u{1f}legacy-eiot"),
            Subject::Date {
                tenant,
                site,
                event,
                at,
            } => format!(
                "{tenant}\u{1f}date\u{1f}{}\u{1f}{}\u{1f}{}",
                event.code(),
                site.as_deref().unwrap_or_default(),
                at.timestamp_millis()
            ),
        }
    }

    /// Short label for the site column of tables: the site, or what the tenant-wide
    /// decision is about.
    pub fn label(&self) -> String {
        match self {
            Subject::OtSite { site, .. } => site.clone(),
            Subject::EnterpriseIot { .. } => "(Enterprise IoT)".into(),
            Subject::LegacyOtPlan { plan, .. } => format!("(legacy OT plan {plan})"),
            Subject::LegacyEiotPlan { .. } => "(legacy Enterprise IoT plan)".into(),
            Subject::Date {
                site, event, at, ..
            } => {
                let date = format!("({} {})", event.code(), at.format("%Y-%m-%d %H:%M UTC"));
                match site {
                    Some(site) => format!("{site} {date}"),
                    None => date,
                }
            }
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant(), self.label())
    }
}
