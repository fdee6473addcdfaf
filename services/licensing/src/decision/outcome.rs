//! Outcomes and decisions: what deciding on one count value gives, and the stored
//! decision that adds the count it rests on.

use super::{Status, Subject};
use crate::count::{Count, CountWindow};
use crate::settings::Settings;
use crate::tier::TierNeed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What covers a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    Paid,
    Trial,
    LegacyPlan,
    None,
}

/// The result of deciding on one count value: everything but the count itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: Status,
    pub coverage: Coverage,
    /// The tier holding in effect (OT sites).
    pub licensed_tier: Option<TierNeed>,
    /// Devices the licences in effect cover (tier capacity, trial allowance, E5 +
    /// standalone, or commitment).
    pub licensed_capacity: Option<u64>,
    /// The smallest tier holding that covers the count (OT sites).
    pub required_tier: Option<TierNeed>,
    /// The number compared with `licensed_capacity` after any rounding (legacy EIoT:
    /// rounded up to 100).
    pub billed: u64,
    /// Whether hysteresis kept a higher status than the count alone gives.
    pub held_by_hysteresis: bool,
    /// Why, in words.
    pub notes: Vec<String>,
}

impl Outcome {
    /// Two outcomes lead to the same decision: same status transition and same tiers.
    pub fn same_decision(&self, other: &Outcome) -> bool {
        self.status.transition_key() == other.status.transition_key()
            && self.required_tier == other.required_tier
            && self.licensed_tier == other.licensed_tier
    }
}

/// A decision about one subject, with the count it rests on. Serialized as stored in
/// `reconciliation_runs.decision` and read back from there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub subject: Subject,
    pub window: CountWindow,
    /// The count the decision rests on.
    pub count: Count,
    /// The original estimate, when it straddled a boundary and the exact count was
    /// fetched.
    pub estimate: Option<Count>,
    /// True when an exact count was fetched for this decision.
    pub exact_fetched: bool,
    /// True when the estimate straddled a boundary but no exact count could be had: the
    /// decision then rests on the estimate's value and says so.
    pub uncertain: bool,
    /// Count / licensed capacity.
    pub utilisation: Option<f64>,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub decided_at: DateTime<Utc>,
}

impl Decision {
    pub fn status(&self) -> &Status {
        &self.outcome.status
    }

    /// Half-width of the error band at the configured sigmas (0 when exact).
    pub fn error_bound(&self, settings: &Settings) -> u64 {
        self.count.error_bound(settings.error_band_sigmas)
    }
}

/// Utilisation of a capacity (None when there is none).
pub fn utilisation(billed: u64, capacity: Option<u64>) -> Option<f64> {
    capacity
        .filter(|&c| c > 0)
        .map(|c| billed as f64 / c as f64)
}
