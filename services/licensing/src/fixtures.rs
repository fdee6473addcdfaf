//! Example values for the tests of this and other crates (feature `fixtures`).

use crate::count::{Count, CountWindow};
use crate::decision::{Coverage, Decision, Outcome, Status, Subject};
use crate::tier::{Tier, TierNeed};
use chrono::{DateTime, Utc};

/// acme/p1 at 1,500 ± 10 devices on an L licence: over tier, buy XL.
pub fn sample_decision() -> Decision {
    let now = DateTime::parse_from_rfc3339("2025-06-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    Decision {
        subject: Subject::OtSite {
            tenant: "acme".into(),
            site: "p1".into(),
        },
        window: CountWindow::ending(now, 60),
        count: Count::estimated(1_500, 10.0),
        estimate: None,
        exact_fetched: false,
        uncertain: false,
        utilisation: Some(1.5),
        outcome: Outcome {
            status: Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl),
            },
            coverage: Coverage::Paid,
            licensed_tier: Some(TierNeed::one(Tier::L)),
            licensed_capacity: Some(1_000),
            required_tier: Some(TierNeed::one(Tier::Xl)),
            billed: 1_500,
            held_by_hysteresis: false,
            notes: vec!["needs XL".into()],
        },
        decided_at: now,
    }
}
