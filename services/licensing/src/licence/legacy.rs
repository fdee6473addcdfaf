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

/// A legacy OT plan billed by committed devices over some (or all) of a tenant's sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyOtPlan {
    pub id: String,
    /// Sites the plan covers; empty = every site of the tenant.
    pub sites: Vec<String>,
    pub commitments: Vec<Commitment>,
}

impl LegacyOtPlan {
    pub fn covers(&self, site: &str) -> bool {
        self.sites.is_empty() || self.sites.iter().any(|s| s == site)
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
