//! Legacy committed-device plans: commitments, the one in force at a time, and the
//! sites an OT plan covers.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// A committed-device number and when it was confirmed (effective one hour later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Commitment {
    pub devices: u64,
    pub confirmed_at: DateTime<Utc>,
}

/// The commitment in force at `now`: the latest confirmed at least `delay` ago.
pub fn commitment_at(
    commitments: &[Commitment],
    now: DateTime<Utc>,
    delay: Duration,
) -> Option<Commitment> {
    commitments
        .iter()
        .filter(|c| crate::time::plus(c.confirmed_at, delay) <= now)
        .max_by_key(|c| c.confirmed_at)
        .copied()
}

/// Device-days charged over `[from, to)`: each commitment is charged for the time it was
/// in force (from one hour after its confirmation until the next one took over), per
/// the documents ("changes ... are charged for the time each was in effect").
pub fn charged_device_days(
    commitments: &[Commitment],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    delay: Duration,
) -> f64 {
    let mut changes: Vec<(DateTime<Utc>, u64)> = commitments
        .iter()
        .map(|c| (crate::time::plus(c.confirmed_at, delay), c.devices))
        .collect();
    changes.sort();
    let mut total = 0.0;
    for (i, &(start, devices)) in changes.iter().enumerate() {
        let end = changes.get(i + 1).map_or(to, |next| next.0);
        let (a, b) = (start.max(from), end.min(to));
        if a < b {
            total += devices as f64 * (b - a).num_seconds() as f64 / 86_400.0;
        }
    }
    total
}

/// How a legacy plan's commitment is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CommitmentTerm {
    /// Billed by calendar month (the default).
    #[default]
    Monthly,
    /// Billed by year from the first commitment; only annual plans commit to a number of
    /// sites.
    Annual,
}

/// A legacy OT plan billed by committed devices over some (or all) of a tenant's sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyOtPlan {
    pub id: String,
    /// Sites the plan covers; empty = every site of the tenant.
    pub sites: Vec<String>,
    pub commitments: Vec<Commitment>,
    pub term: CommitmentTerm,
    /// Committed number of sites (annual plans only).
    pub committed_sites: Option<u32>,
}

impl LegacyOtPlan {
    pub fn covers(&self, site: &str) -> bool {
        self.sites.is_empty() || self.sites.iter().any(|s| s == site)
    }

    /// The billing period containing `now`: its calendar month (monthly), or the year
    /// from the anniversary of the first commitment (annual).
    pub fn billing_period(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        use chrono::{Datelike, Months, TimeZone};
        let step = match self.term {
            CommitmentTerm::Monthly => Months::new(1),
            CommitmentTerm::Annual => Months::new(12),
        };
        let mut start = match self.term {
            CommitmentTerm::Monthly => Utc
                .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
                .single()
                .unwrap_or(now),
            CommitmentTerm::Annual => self
                .commitments
                .iter()
                .map(|c| c.confirmed_at)
                .min()
                .unwrap_or(now),
        };
        // Whole periods forward to the one containing `now` (at most 9,999 years).
        loop {
            match start.checked_add_months(step) {
                Some(next) if next <= now => start = next,
                Some(next) => return (start, next),
                None => return (start, DateTime::<Utc>::MAX_UTC),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::licence::test_support::t;

    #[test]
    fn legacy_commitment_in_force_one_hour_after_confirmation() {
        let cs = [
            Commitment {
                devices: 1000,
                confirmed_at: t("2025-01-01T00:00:00Z"),
            },
            Commitment {
                devices: 2000,
                confirmed_at: t("2025-06-01T08:00:00Z"),
            },
        ];
        let h = Duration::hours(1);
        assert_eq!(
            commitment_at(&cs, t("2025-06-01T08:59:00Z"), h)
                .unwrap()
                .devices,
            1000
        );
        assert_eq!(
            commitment_at(&cs, t("2025-06-01T09:00:00Z"), h)
                .unwrap()
                .devices,
            2000
        );
        assert!(commitment_at(&cs, t("2024-12-31T00:00:00Z"), h).is_none());
    }
}
