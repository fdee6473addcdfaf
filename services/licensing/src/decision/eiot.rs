//! Enterprise IoT decisions: a tenant's IoT devices against its E5 and standalone
//! licences, or its Enterprise IoT trial.

use super::hysteresis::level;
use super::{days_left, Coverage, Outcome, Status};
use crate::licence::{EiotTrial, Tenant};
use crate::settings::{EiotGapRounding, Settings};
use crate::time::minus_days;
use chrono::{DateTime, Utc};

/// Rounds up to a multiple of 100 (1,679 → 1,700); None when the result does not fit
/// in a `u64` (the engine never decides on counts that large: see
/// [`crate::count::MAX_DEVICES`]).
pub fn round_up_100(n: u64) -> Option<u64> {
    n.div_ceil(100).checked_mul(100)
}

/// Devices covered by E5 and standalone licences. Saturating is exact for every
/// comparison with a `u64` count (validation rejects files where it would saturate).
pub fn eiot_covered(e5_licences: u64, devices_per_e5: u64, standalone: u64) -> u64 {
    e5_licences
        .saturating_mul(devices_per_e5)
        .saturating_add(standalone)
}

/// Enterprise IoT: IoT devices (Computers & Mobile excluded) against 5 x E5 +
/// standalone licences, or the trial.
pub fn decide_eiot(
    tenant: &Tenant,
    value: u64,
    prev: Option<&Status>,
    s: &Settings,
    now: DateTime<Utc>,
) -> Outcome {
    let eiot = tenant.enterprise_iot.clone().unwrap_or_default();
    let covered = eiot_covered(eiot.e5_licences, s.devices_per_e5, eiot.standalone_licences);
    let billed = match s.eiot_gap_rounding {
        EiotGapRounding::Exact => value,
        // Saturating keeps the status monotone for counts the engine never decides on.
        EiotGapRounding::RoundUpTo100 => round_up_100(value).unwrap_or(u64::MAX),
    };
    let mut notes = vec![format!(
        "{} E5 x {} + {} standalone = {covered} devices covered",
        eiot.e5_licences, s.devices_per_e5, eiot.standalone_licences
    )];
    if tenant.eiot_plan_gone(now, s.effective_delay()) && covered > 0 {
        notes.push(
            "the Enterprise IoT (or OT) plan was cancelled in Azure: the service stopped, the E5 / standalone licences are still billed; cancel them in the Microsoft 365 admin center or restore the plan".into(),
        );
        return Outcome {
            status: Status::BilledNoPlan,
            coverage: Coverage::None,
            licensed_tier: None,
            licensed_capacity: Some(covered),
            required_tier: None,
            billed,
            held_by_hysteresis: false,
            notes,
        };
    }
    let prev_level = prev.and_then(Status::level);
    let trial = eiot
        .trial
        .as_ref()
        .filter(|t| now >= t.start && now < t.end());
    let (status, coverage, capacity, held) = match trial {
        Some(trial) => {
            let (status, held) = trial_status(trial, value, prev_level, s, now, &mut notes);
            let limit = trial.device_limit.unwrap_or(u64::MAX);
            (status, Coverage::Trial, limit, held)
        }
        None => {
            let (status, held) = licensed_status(billed, covered, prev_level, s, &mut notes);
            (status, Coverage::Paid, covered, held)
        }
    };
    Outcome {
        status,
        coverage,
        licensed_tier: None,
        licensed_capacity: Some(capacity),
        required_tier: None,
        billed,
        held_by_hysteresis: held,
        notes,
    }
}

/// A trial in progress: unlimited, or limited to `device_limit` devices; it can be
/// extended in its final days. Returns the status and whether hysteresis held it.
fn trial_status(
    trial: &EiotTrial,
    value: u64,
    prev_level: Option<u8>,
    s: &Settings,
    now: DateTime<Utc>,
    notes: &mut Vec<String>,
) -> (Status, bool) {
    let end = trial.end();
    let limit = trial.device_limit.unwrap_or(u64::MAX);
    let ending = now >= minus_days(end, s.trial_ending_days);
    let (lvl, held) = level(value, limit, prev_level, s);
    if value > limit {
        notes.push(format!("trial covers {limit} devices; {value} seen"));
    }
    let status = if ending {
        // An over-allowance is shown beside the day counter, never hidden by it.
        Status::TrialEnding {
            days_left: days_left(end, now),
            over_allowance: trial.device_limit.is_some() && lvl == 2,
        }
    } else if trial.device_limit.is_none() {
        Status::WithinTier
    } else {
        match lvl {
            2 => Status::TrialOverAllowance,
            1 => Status::NearLimit,
            _ => Status::WithinTier,
        }
    };
    (status, held)
}

/// `billed` devices against the `covered` ones (E5 and standalone licences): the gap
/// is the standalone licences to buy. Returns the status and whether hysteresis held it.
fn licensed_status(
    billed: u64,
    covered: u64,
    prev_level: Option<u8>,
    s: &Settings,
    notes: &mut Vec<String>,
) -> (Status, bool) {
    let (lvl, held) = level(billed, covered, prev_level, s);
    let gap = billed.saturating_sub(covered);
    let status = match lvl {
        2 => {
            notes.push(format!(
                "{billed} IoT devices: {gap} standalone licences needed"
            ));
            // Held above capacity by hysteresis: nothing to buy yet, but keep the status.
            Status::StandaloneNeeded {
                licences_to_buy: gap,
            }
        }
        1 => Status::NearLimit,
        _ => Status::WithinTier,
    };
    (status, held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::test_support::{book, t, MID};

    #[test]
    fn eiot_1204_devices_240_e5_need_4_standalone() {
        let b = book("[[tenants]]\nid = \"acme\"\n[tenants.enterprise_iot]\ne5_licences = 240\n");
        let s = Settings::default();
        let o = decide_eiot(&b.tenants[0], 1_204, None, &s, t(MID));
        assert_eq!(o.status, Status::StandaloneNeeded { licences_to_buy: 4 });
        assert_eq!(o.licensed_capacity, Some(1_200));
        assert_eq!(
            decide_eiot(&b.tenants[0], 1_200, None, &s, t(MID)).status,
            Status::NearLimit
        );
        // With the round-up-to-100 setting the gap is 100.
        let r = Settings {
            eiot_gap_rounding: EiotGapRounding::RoundUpTo100,
            ..Settings::default()
        };
        assert_eq!(
            decide_eiot(&b.tenants[0], 1_204, None, &r, t(MID)).status,
            Status::StandaloneNeeded {
                licences_to_buy: 100
            }
        );
        // Standalone licences close the gap.
        let b = book("[[tenants]]\nid = \"acme\"\n[tenants.enterprise_iot]\ne5_licences = 240\nstandalone_licences = 4\n");
        assert_eq!(
            decide_eiot(&b.tenants[0], 1_204, None, &s, t(MID)).status,
            Status::NearLimit
        );
    }

    #[test]
    fn eiot_trial_unlimited_or_limited() {
        let b = book("[[tenants]]\nid = \"a\"\n[tenants.enterprise_iot.trial]\nstart = \"2025-05-20\"\ndays = 30\n");
        let s = Settings::default();
        assert_eq!(
            decide_eiot(&b.tenants[0], 50_000, None, &s, t(MID)).status,
            Status::WithinTier
        );
        assert_eq!(
            decide_eiot(&b.tenants[0], 50_000, None, &s, t("2025-06-10T00:00:00Z")).status,
            Status::TrialEnding {
                days_left: 9,
                over_allowance: false
            }
        );
        let b = book("[[tenants]]\nid = \"a\"\n[tenants.enterprise_iot.trial]\nstart = \"2025-05-01\"\ndays = 90\ndevice_limit = 100\n");
        assert_eq!(
            decide_eiot(&b.tenants[0], 150, None, &s, t(MID)).status,
            Status::TrialOverAllowance
        );
        // In its final days the over-allowance shows beside the day counter.
        assert_eq!(
            decide_eiot(&b.tenants[0], 150, None, &s, t("2025-07-25T00:00:00Z")).status,
            Status::TrialEnding {
                days_left: 5,
                over_allowance: true
            }
        );
    }
}
