//! OT site licences: their kinds, terms, trial extensions and cancellations, and when
//! each one covers its site.

use crate::tier::Tier;
use crate::time::{minus_days, plus};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Trial, paid, or paid-then-cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceKind {
    Trial,
    Paid,
    Cancelled,
}

/// A trial extension, requested by the customer in the trial's final days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrialExtension {
    pub requested_at: DateTime<Utc>,
    pub days: u32,
}

/// One OT site licence (or `quantity` stacked XL licences).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtLicence {
    /// Free-form reference (order number), for output only.
    pub id: Option<String>,
    pub tier: Tier,
    /// Number of licences; above 1 only for XL.
    pub quantity: u32,
    pub kind: LicenceKind,
    pub start: DateTime<Utc>,
    /// End of the licence term before trial extensions (paid: start + 1 year by default;
    /// trial: start + trial_days).
    pub end: DateTime<Utc>,
    /// When the purchase or plan change was confirmed; effective one hour later.
    pub confirmed_at: DateTime<Utc>,
    /// When a cancellation was confirmed (kind = cancelled); effective one hour later.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Trial length in days (trials only).
    pub trial_days: Option<u32>,
    pub extensions: Vec<TrialExtension>,
}

impl OtLicence {
    /// First instant the licence counts: its start, but never before one hour (the
    /// configured delay) after confirmation.
    pub fn effective_from(&self, delay: Duration) -> DateTime<Utc> {
        self.start.max(plus(self.confirmed_at, delay))
    }

    /// End of the term including trial extensions.
    pub fn term_end(&self) -> DateTime<Utc> {
        let extra: i64 = self.extensions.iter().map(|e| i64::from(e.days)).sum();
        Duration::try_days(extra).map_or(DateTime::<Utc>::MAX_UTC, |d| plus(self.end, d))
    }

    /// First instant the licence no longer counts: the term end, or one hour after a
    /// cancellation was confirmed, whichever comes first.
    pub fn effective_until(&self, delay: Duration) -> DateTime<Utc> {
        match self.cancelled_at {
            Some(c) => self.term_end().min(plus(c, delay)),
            None => self.term_end(),
        }
    }

    /// Whether the licence covers the site at `now`.
    pub fn is_effective(&self, now: DateTime<Utc>, delay: Duration) -> bool {
        self.effective_from(delay) <= now && now < self.effective_until(delay)
    }

    pub fn is_trial(&self) -> bool {
        self.kind == LicenceKind::Trial
    }

    /// A trial can be extended in its final `ending_days` days.
    pub fn can_extend(&self, now: DateTime<Utc>, ending_days: u32) -> bool {
        let end = self.term_end();
        self.is_trial() && now < end && now >= minus_days(end, ending_days)
    }

    /// A paid licence cancelled within seven days of its start gets a prorated refund.
    pub fn refund_eligible(&self) -> bool {
        match (self.kind, self.cancelled_at) {
            (LicenceKind::Cancelled, Some(c)) => c - self.start <= Duration::days(7),
            _ => false,
        }
    }
}

/// A site: one physical location with its OT licences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub id: String,
    pub licences: Vec<OtLicence>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::licence::test_support::{load, t, ONE};

    #[test]
    fn effective_one_hour_after_confirmation() {
        let doc = ONE.replace(
            "start = \"2025-01-01T00:00:00Z\"",
            "start = \"2025-01-01T00:00:00Z\"\nconfirmed_at = \"2025-03-01T10:00:00Z\"",
        );
        let b = load(&doc).unwrap();
        let l = &b.tenants[0].sites[0].licences[0];
        let h = Duration::hours(1);
        assert!(!l.is_effective(t("2025-03-01T10:59:59Z"), h));
        assert!(l.is_effective(t("2025-03-01T11:00:00Z"), h));
    }

    #[test]
    fn cancellation_effective_one_hour_after_confirmation_and_refund_window() {
        let doc = ONE.replace(
            "kind = \"paid\"",
            "kind = \"cancelled\"\ncancelled_at = \"2025-01-05T12:00:00Z\"",
        );
        let b = load(&doc).unwrap();
        let l = &b.tenants[0].sites[0].licences[0];
        let h = Duration::hours(1);
        assert!(l.is_effective(t("2025-01-05T12:59:59Z"), h));
        assert!(!l.is_effective(t("2025-01-05T13:00:00Z"), h));
        assert!(l.refund_eligible());
        let late = ONE.replace(
            "kind = \"paid\"",
            "kind = \"cancelled\"\ncancelled_at = \"2025-01-09T00:00:00Z\"",
        );
        assert!(!load(&late).unwrap().tenants[0].sites[0].licences[0].refund_eligible());
    }

    #[test]
    fn trial_length_is_a_field_and_extension_only_in_final_15_days() {
        let trial = |ext: &str| {
            format!(
                r#"
[[tenants]]
id = "acme"
[[tenants.sites]]
id = "p"
[[tenants.sites.licences]]
kind = "trial"
trial_days = 60
start = "2025-01-01T00:00:00Z"
{ext}
"#
            )
        };
        let b = load(&trial("")).unwrap();
        let l = &b.tenants[0].sites[0].licences[0];
        assert_eq!(l.tier, Tier::L);
        assert_eq!(l.term_end(), t("2025-03-02T00:00:00Z"));
        assert!(!l.can_extend(t("2025-02-14T23:59:59Z"), 15));
        assert!(l.can_extend(t("2025-02-15T00:00:00Z"), 15));
        assert!(!l.can_extend(t("2025-03-02T00:00:00Z"), 15));

        let ok = trial(
            "[[tenants.sites.licences.extensions]]\nrequested_at = \"2025-02-20T00:00:00Z\"\ndays = 30",
        );
        let b = load(&ok).unwrap();
        assert_eq!(
            b.tenants[0].sites[0].licences[0].term_end(),
            t("2025-04-01T00:00:00Z")
        );
        let early = trial(
            "[[tenants.sites.licences.extensions]]\nrequested_at = \"2025-01-20T00:00:00Z\"\ndays = 30",
        );
        let e = load(&early).unwrap_err().to_string();
        assert!(
            e.starts_with("tenants[0].sites[0].licences[0].extensions[0].requested_at: a trial can only be extended in its final 15 days"),
            "{e}"
        );
    }
}
