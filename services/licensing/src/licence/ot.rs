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
    /// When a cancellation was confirmed (kind = cancelled): within seven days of the
    /// start the licence ends one hour later (prorated refund), after that it runs to the
    /// end of its current term (recurring billing off).
    pub cancelled_at: Option<DateTime<Utc>>,
    /// A paid licence without an `end` renews every year from its start while recurring
    /// billing is on (the default): it does not expire.
    pub renews: bool,
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

    /// The end of the term in force at `t`: for a renewing licence the first yearly
    /// anniversary of its start after `t`, else the term end.
    pub fn term_end_at(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if !self.renews {
            return self.term_end();
        }
        let mut end = self.term_end();
        // Whole years: at most 9,999 steps (dates stay within years 1..9999).
        while end <= t {
            match end.checked_add_months(chrono::Months::new(12)) {
                Some(next) => end = next,
                None => return DateTime::<Utc>::MAX_UTC,
            }
        }
        end
    }

    /// The renewal date after `now` of a renewing licence that has not been cancelled.
    pub fn next_renewal(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.renews && self.cancelled_at.is_none()).then(|| self.term_end_at(now))
    }

    /// First instant the licence no longer counts: never for a renewing licence; the term
    /// end; or, once cancelled, one hour after the confirmation (within seven days of the
    /// start) or the end of the term in force at the cancellation (after).
    pub fn effective_until(&self, delay: Duration) -> DateTime<Utc> {
        match self.cancelled_at {
            Some(c) if self.refund_eligible() => self.term_end_at(c).min(plus(c, delay)),
            Some(c) => self.term_end_at(c),
            None if self.renews => DateTime::<Utc>::MAX_UTC,
            None => self.term_end(),
        }
    }

    /// The share of the term refunded for a cancellation within seven days of the start:
    /// the part of the term after the licence ended (prorated), in 0..=1.
    pub fn refund_fraction(&self, delay: Duration) -> Option<f64> {
        let c = self.cancelled_at.filter(|_| self.refund_eligible())?;
        let term_end = self.term_end_at(c);
        let term = (term_end - self.start).num_seconds().max(1) as f64;
        let unused = (term_end - self.effective_until(delay))
            .num_seconds()
            .max(0) as f64;
        Some((unused / term).clamp(0.0, 1.0))
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
