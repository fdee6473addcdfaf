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
    let delay = s.effective_delay();
    let c = commitment_at(&plan.commitments, now, delay)?;
    let (from, to) = plan.billing_period(now);
    let so_far = crate::licence::charged_device_days(&plan.commitments, from, now, delay);
    let whole = crate::licence::charged_device_days(&plan.commitments, from, to, delay);
    let notes = vec![
        format!("{value} devices detected; {} committed", c.devices),
        format!(
            "{:?} billing period {} to {}: {so_far:.1} device-days charged so far, {whole:.1} for the period at the commitments confirmed",
            plan.term,
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d")
        )
        .to_lowercase(),
    ];
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

    /// Issue 13: each commitment is charged for the time it was in force (from one hour
    /// after its confirmation), per billing period: a calendar month, or a year for
    /// annual plans; only annual plans commit to a number of sites.
    #[test]
    fn legacy_plans_charge_device_days_per_billing_period() {
        let doc = |term: &str| {
            format!(
                "[[tenants]]\nid = \"a\"\n[[tenants.legacy_ot_plans]]\nid = \"plan\"\n{term}\ncommitments = [{{ devices = 1000, confirmed_at = \"2025-01-01T00:00:00Z\" }}, {{ devices = 2000, confirmed_at = \"2025-06-10T23:00:00Z\" }}]\n"
            )
        };
        let monthly = book(&doc(""));
        let plan = &monthly.tenants[0].legacy_ot_plans[0];
        let now = t("2025-06-20T00:00:00Z");
        let (from, to) = plan.billing_period(now);
        assert_eq!(
            (from, to),
            (t("2025-06-01T00:00:00Z"), t("2025-07-01T00:00:00Z"))
        );
        let hour = chrono::Duration::hours(1);
        // 10 days at 1,000, then 20 days at 2,000 (in force from 2025-06-11 00:00).
        let days = crate::licence::charged_device_days(&plan.commitments, from, to, hour);
        assert!((days - 50_000.0).abs() < 1e-6, "{days}");
        let o = decide_legacy_ot(plan, 1_500, None, &Settings::default(), now).unwrap();
        assert!(
            o.notes.iter().any(
                |n| n.contains("monthly billing period 2025-06-01 to 2025-07-01")
                    && n.contains("28000.0 device-days charged so far")
                    && n.contains("50000.0 for the period")
            ),
            "{:?}",
            o.notes
        );
        let annual = book(&doc("term = \"annual\"\ncommitted_sites = 4"));
        let plan = &annual.tenants[0].legacy_ot_plans[0];
        assert_eq!(plan.committed_sites, Some(4));
        assert_eq!(
            plan.billing_period(now),
            (t("2025-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z"))
        );
        let err = crate::licence::LicenceBook::from_toml_str(
            &doc("committed_sites = 4"),
            &Settings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("committed_sites") && err.contains("annual"),
            "{err}"
        );
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
