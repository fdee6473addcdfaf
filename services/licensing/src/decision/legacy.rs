//! Legacy plan decisions: detected devices against a committed-device number, for a
//! tenant's legacy OT plans and its legacy Enterprise IoT plan.

use super::eiot::round_up_100;
use super::hysteresis::level;
use super::{Coverage, Outcome, Status};
use crate::licence::{commitment_at, LegacyOtPlan, Tenant};
use crate::settings::{LegacyEiotRounding, Settings};
use chrono::{DateTime, Utc};

/// Compares a committed-device plan with detected devices.
pub fn decide_commitment(
    billed: u64,
    committed: u64,
    prev: Option<&Status>,
    s: &Settings,
    mut notes: Vec<String>,
) -> Outcome {
    let (lvl, held) = level(billed, committed, prev.and_then(Status::level), s);
    let status = match lvl {
        2 => {
            notes.push(format!(
                "{billed} devices detected exceed {committed} committed: raise the commitment"
            ));
            Status::CommitmentExceeded { committed }
        }
        1 => Status::NearLimit,
        _ => Status::WithinTier,
    };
    Outcome {
        status,
        coverage: Coverage::LegacyPlan,
        licensed_tier: None,
        licensed_capacity: Some(committed),
        required_tier: None,
        billed,
        held_by_hysteresis: held,
        notes,
    }
}

/// Legacy Enterprise IoT plan: (network + IoT devices), rounded up to a multiple of 100
/// by default, against the commitment in force. None when no commitment is in force.
pub fn decide_legacy_eiot(
    tenant: &Tenant,
    value: u64,
    prev: Option<&Status>,
    s: &Settings,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let eiot = tenant.enterprise_iot.as_ref()?;
    let c = commitment_at(&eiot.legacy_commitments, now, s.effective_delay())?;
    let billed = match s.legacy_eiot_rounding {
        // Saturating keeps the status monotone for counts the engine never decides on.
        LegacyEiotRounding::RoundUpTo100 => round_up_100(value).unwrap_or(u64::MAX),
        LegacyEiotRounding::Exact => value,
    };
    let notes = vec![format!(
        "network + IoT devices {value} → {billed} billed; {} committed",
        c.devices
    )];
    Some(decide_commitment(billed, c.devices, prev, s, notes))
}

/// Legacy committed-device OT plan: detected devices over its sites against the
/// commitment in force. None when no commitment is in force yet.
pub fn decide_legacy_ot(
    plan: &LegacyOtPlan,
    value: u64,
    prev: Option<&Status>,
    s: &Settings,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let c = commitment_at(&plan.commitments, now, s.effective_delay())?;
    let notes = vec![format!("{value} devices detected; {} committed", c.devices)];
    Some(decide_commitment(value, c.devices, prev, s, notes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::test_support::{book, decide, t, MID};

    #[test]
    fn legacy_eiot_473_plus_1206_rounds_to_1700() {
        assert_eq!(round_up_100(473 + 1_206), Some(1_700));
        assert_eq!(round_up_100(1_700), Some(1_700));
        assert_eq!(round_up_100(0), Some(0));
        assert_eq!(round_up_100(u64::MAX - 5), None);
        let b = book("[[tenants]]\nid = \"a\"\n[tenants.enterprise_iot]\nlegacy_commitments = [{ devices = 1700, confirmed_at = \"2025-01-01\" }]\n");
        let s = Settings::default();
        let o = decide_legacy_eiot(&b.tenants[0], 473 + 1_206, None, &s, t(MID)).unwrap();
        assert_eq!(o.billed, 1_700);
        assert_eq!(o.status, Status::NearLimit);
        let o = decide_legacy_eiot(&b.tenants[0], 1_701, None, &s, t(MID)).unwrap();
        assert_eq!(o.billed, 1_800);
        assert_eq!(o.status, Status::CommitmentExceeded { committed: 1_700 });
        let exact = Settings {
            legacy_eiot_rounding: LegacyEiotRounding::Exact,
            ..Settings::default()
        };
        let o = decide_legacy_eiot(&b.tenants[0], 1_679, None, &exact, t(MID)).unwrap();
        assert_eq!(o.billed, 1_679);
    }

    #[test]
    fn legacy_ot_plan_warns_when_detected_exceeds_committed() {
        let b = book("[[tenants]]\nid = \"a\"\n[[tenants.sites]]\nid = \"p1\"\n[[tenants.legacy_ot_plans]]\nid = \"plan\"\ncommitments = [{ devices = 3000, confirmed_at = \"2025-01-01\" }]\n");
        let s = Settings::default();
        let plan = &b.tenants[0].legacy_ot_plans[0];
        assert_eq!(
            decide_legacy_ot(plan, 3_001, None, &s, t(MID))
                .unwrap()
                .status,
            Status::CommitmentExceeded { committed: 3_000 }
        );
        assert_eq!(
            decide_legacy_ot(plan, 2_000, None, &s, t(MID))
                .unwrap()
                .status,
            Status::WithinTier
        );
        // Sites on a legacy plan are not "unlicensed".
        let o = decide(&b, 2_000, MID, None);
        assert_eq!(o.status, Status::WithinTier);
        assert_eq!(o.coverage, Coverage::LegacyPlan);
    }
}
