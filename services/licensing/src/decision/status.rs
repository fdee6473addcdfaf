//! Statuses: the state a subject is in, how it reads in alerts, what counts as a
//! transition, and the day counters some statuses carry.

use crate::tier::TierNeed;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A subject's licence status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Licensed and below the near-limit ratio.
    WithinTier,
    /// Licensed, at or above the near-limit ratio (default 90%) of capacity.
    NearLimit,
    /// More devices than licensed: buy `tier_to_buy` (the whole licensing the site
    /// needs, e.g. one XL, or 2 x XL).
    OverTier { tier_to_buy: TierNeed },
    /// Devices seen at a site with no licence in effect while the tenant has others.
    Unlicensed,
    /// A trial above its allowance (1,000 devices). Monitoring continues; informational
    /// until the trial ends.
    TrialOverAllowance,
    /// A trial in its final days (default 15): it can be extended now. When the count is
    /// also above the trial's allowance, `over_allowance` says so beside the day counter
    /// (at the trial's end the site must be licensed at the tier its count needs).
    TrialEnding {
        days_left: i64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        over_allowance: bool,
    },
    /// An estimate whose error band straddles a boundary, no exact count to settle it,
    /// and the band's upper end decides over: the subject may be over. `if_over` is
    /// the status the upper end gives (what to buy if it is). Never passes silently:
    /// `--fail-on possibly-over` fails on it.
    PossiblyOver { if_over: Box<Status> },
    /// The tenant's last licence expired; the service continues for `days_left` more
    /// days.
    GracePeriod { days_left: i64 },
    /// Grace is over: the service has stopped; data is retained `retention_days_left`
    /// more days.
    ServiceStopped { retention_days_left: i64 },
    /// Final days of data retention after the service stopped (0 = data is due for
    /// deletion).
    RetentionEnding { days_left: i64 },
    /// Retention is over: the tenant's data has been deleted (90 days after the service
    /// stopped, by default).
    RetentionOver,
    /// Enterprise IoT: more IoT devices than 5 x E5 + standalone licences cover.
    StandaloneNeeded { licences_to_buy: u64 },
    /// Legacy plan: detected devices exceed the committed number: raise the commitment.
    CommitmentExceeded { committed: u64 },
    /// The Defender for IoT plan was cancelled in Azure: the service is gone from the
    /// subscription, but the Microsoft 365 licence is still billed (cancel it there, or
    /// restore the plan).
    BilledNoPlan,
    /// A date of the licence calendar (renewal, end of a term or trial, service stop,
    /// retention end) is `days_left` days ahead: someone must act before it.
    DateAhead { days_left: i64 },
}

impl Status {
    /// Every [`Status::code`], e.g. to start a metric series per status at zero.
    pub const CODES: [&'static str; 15] = [
        "WITHIN_TIER",
        "NEAR_LIMIT",
        "OVER_TIER",
        "UNLICENSED",
        "TRIAL_OVER_ALLOWANCE",
        "TRIAL_ENDING",
        "POSSIBLY_OVER",
        "GRACE_PERIOD",
        "SERVICE_STOPPED",
        "RETENTION_ENDING",
        "RETENTION_OVER",
        "STANDALONE_NEEDED",
        "COMMITMENT_EXCEEDED",
        "BILLED_NO_PLAN",
        "DATE_AHEAD",
    ];

    /// Upper-case name used in alerts and output.
    pub fn code(&self) -> &'static str {
        match self {
            Status::WithinTier => "WITHIN_TIER",
            Status::NearLimit => "NEAR_LIMIT",
            Status::OverTier { .. } => "OVER_TIER",
            Status::Unlicensed => "UNLICENSED",
            Status::TrialOverAllowance => "TRIAL_OVER_ALLOWANCE",
            Status::TrialEnding { .. } => "TRIAL_ENDING",
            Status::PossiblyOver { .. } => "POSSIBLY_OVER",
            Status::GracePeriod { .. } => "GRACE_PERIOD",
            Status::ServiceStopped { .. } => "SERVICE_STOPPED",
            Status::RetentionEnding { .. } => "RETENTION_ENDING",
            Status::RetentionOver => "RETENTION_OVER",
            Status::StandaloneNeeded { .. } => "STANDALONE_NEEDED",
            Status::CommitmentExceeded { .. } => "COMMITMENT_EXCEEDED",
            Status::BilledNoPlan => "BILLED_NO_PLAN",
            Status::DateAhead { .. } => "DATE_AHEAD",
        }
    }

    /// What a transition is judged on. Day counters are left out (they change daily and
    /// must not raise an alert each day); the tier to buy is kept (needing a bigger tier
    /// is news).
    pub fn transition_key(&self) -> String {
        match self {
            Status::OverTier { tier_to_buy } => format!("OVER_TIER:{tier_to_buy}"),
            Status::TrialEnding {
                over_allowance: true,
                ..
            } => "TRIAL_ENDING:OVER_ALLOWANCE".to_string(),
            Status::PossiblyOver { if_over } => {
                format!("POSSIBLY_OVER:{}", if_over.transition_key())
            }
            other => other.code().to_string(),
        }
    }

    /// Whether the subject is definitely over: the status calls for buying something
    /// (used by `--fail-on over`). [`Status::PossiblyOver`] is not.
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            Status::OverTier { .. }
                | Status::StandaloneNeeded { .. }
                | Status::CommitmentExceeded { .. }
        )
    }

    /// Over, or possibly over (an estimate straddling an over boundary with no exact
    /// count): used by `--fail-on possibly-over`.
    pub fn is_possibly_over(&self) -> bool {
        self.is_over() || matches!(self, Status::PossiblyOver { .. })
    }

    /// Count-driven level for hysteresis: 0 within, 1 near limit, 2 over.
    pub(super) fn level(&self) -> Option<u8> {
        match self {
            Status::WithinTier => Some(0),
            Status::NearLimit => Some(1),
            Status::OverTier { .. }
            | Status::TrialOverAllowance
            | Status::StandaloneNeeded { .. }
            | Status::CommitmentExceeded { .. }
            | Status::TrialEnding {
                over_allowance: true,
                ..
            } => Some(2),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::OverTier { tier_to_buy } => write!(f, "OVER_TIER (buy {tier_to_buy})"),
            Status::TrialEnding {
                days_left,
                over_allowance,
            } => {
                write!(f, "TRIAL_ENDING ({days_left}d left)")?;
                if *over_allowance {
                    f.write_str(" + OVER_ALLOWANCE")?;
                }
                Ok(())
            }
            Status::PossiblyOver { if_over } => write!(f, "POSSIBLY_OVER (if over: {if_over})"),
            Status::GracePeriod { days_left } => write!(f, "GRACE_PERIOD ({days_left}d left)"),
            Status::ServiceStopped {
                retention_days_left,
            } => write!(f, "SERVICE_STOPPED (data kept {retention_days_left}d)"),
            Status::RetentionEnding { days_left } => {
                write!(f, "RETENTION_ENDING ({days_left}d left)")
            }
            Status::StandaloneNeeded { licences_to_buy } => {
                write!(f, "STANDALONE_NEEDED (buy {licences_to_buy})")
            }
            Status::CommitmentExceeded { committed } => {
                write!(f, "COMMITMENT_EXCEEDED (committed {committed})")
            }
            Status::DateAhead { days_left } => write!(f, "DATE_AHEAD ({days_left}d left)"),
            other => f.write_str(other.code()),
        }
    }
}

/// Whole days left until `end` (partial days count as a day; 0 once passed).
pub fn days_left(end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    if now >= end {
        return 0;
    }
    let secs = (end - now).num_seconds();
    (secs + 86_399) / 86_400
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::test_support::t;
    use crate::tier::Tier;

    /// One status of every variant. The match below stops compiling when a variant is
    /// added, so CODES cannot silently miss it.
    fn one_of_each() -> Vec<Status> {
        let all = vec![
            Status::WithinTier,
            Status::NearLimit,
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::M),
            },
            Status::Unlicensed,
            Status::TrialOverAllowance,
            Status::TrialEnding {
                days_left: 3,
                over_allowance: false,
            },
            Status::PossiblyOver {
                if_over: Box::new(Status::Unlicensed),
            },
            Status::GracePeriod { days_left: 3 },
            Status::ServiceStopped {
                retention_days_left: 3,
            },
            Status::RetentionEnding { days_left: 3 },
            Status::RetentionOver,
            Status::StandaloneNeeded { licences_to_buy: 3 },
            Status::CommitmentExceeded { committed: 3 },
            Status::BilledNoPlan,
            Status::DateAhead { days_left: 3 },
        ];
        for s in &all {
            match s {
                Status::WithinTier
                | Status::NearLimit
                | Status::OverTier { .. }
                | Status::Unlicensed
                | Status::TrialOverAllowance
                | Status::TrialEnding { .. }
                | Status::PossiblyOver { .. }
                | Status::GracePeriod { .. }
                | Status::ServiceStopped { .. }
                | Status::RetentionEnding { .. }
                | Status::RetentionOver
                | Status::StandaloneNeeded { .. }
                | Status::CommitmentExceeded { .. }
                | Status::BilledNoPlan
                | Status::DateAhead { .. } => {}
            }
        }
        all
    }

    #[test]
    fn codes_lists_every_status_once() {
        let codes: Vec<&str> = one_of_each().iter().map(Status::code).collect();
        let mut listed = Status::CODES.to_vec();
        let mut seen = codes.clone();
        listed.sort_unstable();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), codes.len(), "two variants share a code");
        assert_eq!(listed, seen);
    }

    #[test]
    fn days_left_counts_partial_days() {
        let end = t("2025-01-31T00:00:00Z");
        assert_eq!(days_left(end, t("2025-01-01T00:00:00Z")), 30);
        assert_eq!(days_left(end, t("2025-01-30T23:00:00Z")), 1);
        assert_eq!(days_left(end, end), 0);
    }

    #[test]
    fn transition_key_ignores_day_counters() {
        assert_eq!(
            Status::GracePeriod { days_left: 3 }.transition_key(),
            Status::GracePeriod { days_left: 2 }.transition_key()
        );
        assert_ne!(
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl)
            }
            .transition_key(),
            Status::OverTier {
                tier_to_buy: TierNeed {
                    tier: Tier::Xl,
                    quantity: 2
                }
            }
            .transition_key()
        );
    }
}
