//! Decisions: given the licences, a device count and the time, what state is a site (or
//! a tenant's Enterprise IoT coverage, or a legacy plan) in, and what must be bought.
//!
//! Everything here is pure: no I/O, the time is a parameter. [`crate::engine`] feeds it
//! counts and fetches exact ones when an estimate is too close to call.
//!
//! Status functions are monotone in the count for a fixed licence, previous status and
//! time, so "the band straddles a boundary" is exactly "the band's two ends decide
//! differently" ([`Outcome::same_decision`]).

use crate::count::{Count, CountWindow};
use crate::licence::{commitment_at, LegacyOtPlan, OtLicence, Site, Tenant};
use crate::settings::{EiotGapRounding, LegacyEiotRounding, Settings};
use crate::tier::{Tier, TierCatalogue, TierNeed};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a decision applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Subject {
    /// One OT site.
    OtSite { tenant: String, site: String },
    /// A tenant's Enterprise IoT devices against E5 + standalone licences.
    EnterpriseIot { tenant: String },
    /// A tenant's legacy committed-device OT plan.
    LegacyOtPlan { tenant: String, plan: String },
    /// A tenant's legacy Enterprise IoT plan.
    LegacyEiotPlan { tenant: String },
}

impl Subject {
    pub fn tenant(&self) -> &str {
        match self {
            Subject::OtSite { tenant, .. }
            | Subject::EnterpriseIot { tenant }
            | Subject::LegacyOtPlan { tenant, .. }
            | Subject::LegacyEiotPlan { tenant } => tenant,
        }
    }

    /// The site, for site decisions; None for tenant-wide ones.
    pub fn site(&self) -> Option<&str> {
        match self {
            Subject::OtSite { site, .. } => Some(site),
            _ => None,
        }
    }

    /// Stable storage key (unit separators cannot occur in ids read from files).
    pub fn key(&self) -> String {
        match self {
            Subject::OtSite { tenant, site } => format!("{tenant}\u{1f}ot\u{1f}{site}"),
            Subject::EnterpriseIot { tenant } => format!("{tenant}\u{1f}eiot"),
            Subject::LegacyOtPlan { tenant, plan } => {
                format!("{tenant}\u{1f}legacy-ot\u{1f}{plan}")
            }
            Subject::LegacyEiotPlan { tenant } => format!("{tenant}\u{1f}legacy-eiot"),
        }
    }

    /// Short label for the site column of tables: the site, or what the tenant-wide
    /// decision is about.
    pub fn label(&self) -> String {
        match self {
            Subject::OtSite { site, .. } => site.clone(),
            Subject::EnterpriseIot { .. } => "(Enterprise IoT)".into(),
            Subject::LegacyOtPlan { plan, .. } => format!("(legacy OT plan {plan})"),
            Subject::LegacyEiotPlan { .. } => "(legacy Enterprise IoT plan)".into(),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant(), self.label())
    }
}

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
    /// A trial in its final days (default 15): it can be extended now.
    TrialEnding { days_left: i64 },
    /// The tenant's last licence expired; the service continues for `days_left` more
    /// days.
    GracePeriod { days_left: i64 },
    /// Grace is over: the service has stopped; data is retained `retention_days_left`
    /// more days.
    ServiceStopped { retention_days_left: i64 },
    /// Final days of data retention after the service stopped (0 = data is due for
    /// deletion).
    RetentionEnding { days_left: i64 },
    /// Enterprise IoT: more IoT devices than 5 x E5 + standalone licences cover.
    StandaloneNeeded { licences_to_buy: u64 },
    /// Legacy plan: detected devices exceed the committed number: raise the commitment.
    CommitmentExceeded { committed: u64 },
}

impl Status {
    /// Upper-case name used in alerts and output.
    pub fn code(&self) -> &'static str {
        match self {
            Status::WithinTier => "WITHIN_TIER",
            Status::NearLimit => "NEAR_LIMIT",
            Status::OverTier { .. } => "OVER_TIER",
            Status::Unlicensed => "UNLICENSED",
            Status::TrialOverAllowance => "TRIAL_OVER_ALLOWANCE",
            Status::TrialEnding { .. } => "TRIAL_ENDING",
            Status::GracePeriod { .. } => "GRACE_PERIOD",
            Status::ServiceStopped { .. } => "SERVICE_STOPPED",
            Status::RetentionEnding { .. } => "RETENTION_ENDING",
            Status::StandaloneNeeded { .. } => "STANDALONE_NEEDED",
            Status::CommitmentExceeded { .. } => "COMMITMENT_EXCEEDED",
        }
    }

    /// What a transition is judged on. Day counters are left out (they change daily and
    /// must not raise an alert each day); the tier to buy is kept (needing a bigger tier
    /// is news).
    pub fn transition_key(&self) -> String {
        match self {
            Status::OverTier { tier_to_buy } => format!("OVER_TIER:{tier_to_buy}"),
            other => other.code().to_string(),
        }
    }

    /// Whether the status calls for action (used by `--fail-on over`).
    pub fn is_over(&self) -> bool {
        matches!(
            self,
            Status::OverTier { .. }
                | Status::StandaloneNeeded { .. }
                | Status::CommitmentExceeded { .. }
        )
    }

    /// Count-driven level for hysteresis: 0 within, 1 near limit, 2 over.
    fn level(&self) -> Option<u8> {
        match self {
            Status::WithinTier => Some(0),
            Status::NearLimit => Some(1),
            Status::OverTier { .. }
            | Status::TrialOverAllowance
            | Status::StandaloneNeeded { .. }
            | Status::CommitmentExceeded { .. } => Some(2),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::OverTier { tier_to_buy } => write!(f, "OVER_TIER (buy {tier_to_buy})"),
            Status::TrialEnding { days_left } => write!(f, "TRIAL_ENDING ({days_left}d left)"),
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
            other => f.write_str(other.code()),
        }
    }
}

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

/// Whole days left until `end` (partial days count as a day; 0 once passed).
pub fn days_left(end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    if now >= end {
        return 0;
    }
    let secs = (end - now).num_seconds();
    (secs + 86_399) / 86_400
}

/// Level 0/1/2 (within / near / over) with hysteresis: to go below a level reached
/// before, the count must clear that level's threshold by `hysteresis_ratio` of the
/// capacity. Monotone in `value` for a fixed `prev`.
fn level(value: u64, capacity: u64, prev: Option<u8>, s: &Settings) -> (u8, bool) {
    let near = ((capacity as f64) * s.near_limit_ratio).ceil() as u64;
    let margin = ((capacity as f64) * s.hysteresis_ratio).ceil() as u64;
    let raw = if value > capacity {
        2
    } else if value >= near {
        1
    } else {
        0
    };
    let p = prev.unwrap_or(0);
    let over_thr = if p >= 2 {
        capacity.saturating_sub(margin)
    } else {
        capacity
    };
    let near_thr = if p >= 1 {
        near.saturating_sub(margin)
    } else {
        near
    };
    let lvl = if value > over_thr {
        2
    } else if value >= near_thr {
        1
    } else {
        0
    };
    (lvl, lvl != raw)
}

/// The tier to buy, with hysteresis: a site that needed `prev` keeps needing it until
/// its count is `hysteresis_ratio` below the boundary under `prev`, so a site hovering at
/// 5,000 devices does not flip between "buy XL" and "buy 2 x XL". Monotone in `value`:
/// `max(required(v), min(prev, required(v / (1 - h))))`.
fn sticky_need(cat: &TierCatalogue, s: &Settings, value: u64, prev: Option<TierNeed>) -> TierNeed {
    let required = cat.required(value, s.above_xl);
    let Some(prev) = prev else {
        return required;
    };
    let inflated = ((value as f64) / (1.0 - s.hysteresis_ratio)).ceil() as u64;
    let near_prev = cat.required(inflated, s.above_xl);
    let capped = if cat.capacity(near_prev) <= cat.capacity(prev) {
        near_prev
    } else {
        prev
    };
    if cat.capacity(capped) > cat.capacity(required) {
        capped
    } else {
        required
    }
}

impl Outcome {
    fn with_required(mut self, need: TierNeed) -> Self {
        self.required_tier = Some(need);
        self
    }
}

/// Everything needed to decide on one OT site.
#[derive(Debug, Clone, Copy)]
pub struct SiteContext<'a> {
    /// The tenant, when it is in the licence book.
    pub tenant: Option<&'a Tenant>,
    /// The site, when it is in the licence book.
    pub site: Option<&'a Site>,
    pub catalogue: &'a TierCatalogue,
    pub settings: &'a Settings,
    pub now: DateTime<Utc>,
}

/// The tier holding of a set of paid licences: stacked XL if any XL, else the largest.
fn holding(paid: &[&OtLicence]) -> TierNeed {
    let xl: u32 = paid
        .iter()
        .filter(|l| l.tier == Tier::Xl)
        .map(|l| l.quantity)
        .sum();
    if xl > 0 {
        return TierNeed {
            tier: Tier::Xl,
            quantity: xl,
        };
    }
    paid.iter()
        .map(|l| TierNeed::one(l.tier))
        .max_by_key(|n| n.tier)
        .unwrap_or(TierNeed::one(Tier::Xs))
}

/// Decides an OT site's status for a count `value`.
pub fn decide_site(ctx: &SiteContext<'_>, value: u64, prev: Option<&Status>) -> Outcome {
    let s = ctx.settings;
    let delay = s.effective_delay();
    let now = ctx.now;
    let required = ctx.catalogue.required(value, s.above_xl);
    let mut notes = Vec::new();
    let prev_level = prev.and_then(Status::level);
    let licences: Vec<&OtLicence> = ctx
        .site
        .map(|s| s.licences.iter().collect())
        .unwrap_or_default();
    let effective: Vec<&OtLicence> = licences
        .iter()
        .copied()
        .filter(|l| l.is_effective(now, delay))
        .collect();
    let paid: Vec<&OtLicence> = effective
        .iter()
        .copied()
        .filter(|l| !l.is_trial())
        .collect();
    let trial = effective
        .iter()
        .copied()
        .filter(|l| l.is_trial())
        .max_by_key(|l| l.term_end());
    let base = |status, coverage, licensed_tier, licensed_capacity, held, notes| Outcome {
        status,
        coverage,
        licensed_tier,
        licensed_capacity,
        required_tier: Some(required),
        billed: value,
        held_by_hysteresis: held,
        notes,
    };

    if !paid.is_empty() {
        let held_tier = holding(&paid);
        let capacity = ctx.catalogue.capacity(held_tier);
        let (lvl, held) = level(value, capacity, prev_level, s);
        let status = match lvl {
            2 => {
                let prev_need = match prev {
                    Some(Status::OverTier { tier_to_buy }) => Some(*tier_to_buy),
                    _ => None,
                };
                let need = sticky_need(ctx.catalogue, s, value, prev_need);
                notes.push(format!(
                    "{value} devices exceed {held_tier} ({capacity}); the site needs {need}"
                ));
                return base(
                    Status::OverTier { tier_to_buy: need },
                    Coverage::Paid,
                    Some(held_tier),
                    Some(capacity),
                    held || need != required,
                    notes,
                )
                .with_required(need);
            }
            1 => Status::NearLimit,
            _ => Status::WithinTier,
        };
        if held {
            notes.push("status held by hysteresis".into());
        }
        return base(
            status,
            Coverage::Paid,
            Some(held_tier),
            Some(capacity),
            held,
            notes,
        );
    }

    if let Some(trial) = trial {
        let allowance = s.trial_allowance;
        let end = trial.term_end();
        let (lvl, held) = level(value, allowance, prev_level, s);
        if value > allowance {
            notes.push(format!(
                "trial covers {allowance} devices; {value} seen: monitoring continues, at trial end ({}) the site needs {required}",
                end.to_rfc3339()
            ));
        }
        let status = if trial.can_extend(now, s.trial_ending_days) {
            notes.push("trial can be extended now".into());
            Status::TrialEnding {
                days_left: days_left(end, now),
            }
        } else {
            match lvl {
                2 => Status::TrialOverAllowance,
                1 => Status::NearLimit,
                _ => Status::WithinTier,
            }
        };
        return base(
            status,
            Coverage::Trial,
            Some(TierNeed::one(trial.tier)),
            Some(allowance),
            held,
            notes,
        );
    }

    if let Some(tenant) = ctx.tenant {
        let site_id = ctx.site.map(|s| s.id.as_str()).unwrap_or("");
        let legacy: Option<&LegacyOtPlan> = tenant
            .legacy_ot_plans
            .iter()
            .find(|p| p.covers(site_id) && commitment_at(&p.commitments, now, delay).is_some());
        if let Some(plan) = legacy {
            notes.push(format!(
                "covered by legacy plan {} (committed devices are checked per plan)",
                plan.id
            ));
            return base(
                Status::WithinTier,
                Coverage::LegacyPlan,
                None,
                None,
                false,
                notes,
            );
        }
    }

    // No licence in effect for this site. Did its last licence (a trial) just end above
    // the trial allowance? Then it is over tier: it must be licensed at the tier its
    // count needs.
    let last = licences
        .iter()
        .filter(|l| l.effective_until(delay) <= now)
        .max_by_key(|l| l.effective_until(delay));
    let trial_ended_over = last.is_some_and(|l| l.is_trial()) && value > s.trial_allowance;

    let tenant_lapsed = ctx
        .tenant
        .and_then(|t| t.last_expiry(now, delay))
        .filter(|_| ctx.tenant.is_some_and(|t| t.legacy_ot_plans.is_empty()));
    if let Some(expired) = tenant_lapsed {
        let grace_end = expired + Duration::days(i64::from(s.grace_days));
        let retention_end = grace_end + Duration::days(i64::from(s.retention_days));
        if now < grace_end {
            let left = days_left(grace_end, now);
            notes.push(format!(
                "tenant's last licence expired {}; grace period ends {}",
                expired.to_rfc3339(),
                grace_end.to_rfc3339()
            ));
            if trial_ended_over {
                notes.push(format!(
                    "trial ended above its allowance; {left}d of grace left"
                ));
                return base(
                    Status::OverTier {
                        tier_to_buy: required,
                    },
                    Coverage::None,
                    None,
                    None,
                    false,
                    notes,
                );
            }
            return base(
                Status::GracePeriod { days_left: left },
                Coverage::None,
                None,
                None,
                false,
                notes,
            );
        }
        let retention_left = days_left(retention_end, now);
        notes.push(format!(
            "service stopped {}; data retained until {}",
            grace_end.to_rfc3339(),
            retention_end.to_rfc3339()
        ));
        let status = if retention_left > i64::from(s.retention_warning_days) {
            Status::ServiceStopped {
                retention_days_left: retention_left,
            }
        } else {
            Status::RetentionEnding {
                days_left: retention_left,
            }
        };
        return base(status, Coverage::None, None, None, false, notes);
    }

    if trial_ended_over {
        notes.push("trial ended above its allowance".into());
        return base(
            Status::OverTier {
                tier_to_buy: required,
            },
            Coverage::None,
            None,
            None,
            false,
            notes,
        );
    }
    notes.push(match (ctx.tenant, ctx.site) {
        (None, _) => "tenant not in the licence book".to_string(),
        (Some(_), None) => "site not in the licence book".to_string(),
        (Some(_), Some(_)) => "no licence in effect for this site".to_string(),
    });
    notes.push(format!("the site needs {required}"));
    base(Status::Unlicensed, Coverage::None, None, None, false, notes)
}

/// Rounds up to a multiple of 100 (1,679 → 1,700).
pub fn round_up_100(n: u64) -> u64 {
    n.div_ceil(100) * 100
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
    let covered = eiot.e5_licences * s.devices_per_e5 + eiot.standalone_licences;
    let billed = match s.eiot_gap_rounding {
        EiotGapRounding::Exact => value,
        EiotGapRounding::RoundUpTo100 => round_up_100(value),
    };
    let mut notes = vec![format!(
        "{} E5 x {} + {} standalone = {covered} devices covered",
        eiot.e5_licences, s.devices_per_e5, eiot.standalone_licences
    )];
    let prev_level = prev.and_then(Status::level);
    let out = |status, capacity, held, notes| Outcome {
        status,
        coverage: Coverage::Paid,
        licensed_tier: None,
        licensed_capacity: Some(capacity),
        required_tier: None,
        billed,
        held_by_hysteresis: held,
        notes,
    };
    if let Some(trial) = eiot
        .trial
        .as_ref()
        .filter(|t| now >= t.start && now < t.end())
    {
        let end = trial.end();
        let limit = trial.device_limit.unwrap_or(u64::MAX);
        let ending = now >= end - Duration::days(i64::from(s.trial_ending_days));
        let (lvl, held) = level(value, limit, prev_level, s);
        if value > limit {
            notes.push(format!("trial covers {limit} devices; {value} seen"));
        }
        let status = if ending {
            Status::TrialEnding {
                days_left: days_left(end, now),
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
        let mut o = out(status, limit, held, notes);
        o.coverage = Coverage::Trial;
        return o;
    }
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
    out(status, covered, held, notes)
}

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
        LegacyEiotRounding::RoundUpTo100 => round_up_100(value),
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

/// Utilisation of a capacity (None when there is none).
pub fn utilisation(billed: u64, capacity: Option<u64>) -> Option<f64> {
    capacity
        .filter(|&c| c > 0)
        .map(|c| billed as f64 / c as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::licence::LicenceBook;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn book(doc: &str) -> LicenceBook {
        LicenceBook::from_toml_str(doc, &Settings::default()).unwrap()
    }

    fn site_doc(licences: &str) -> String {
        format!("[[tenants]]\nid = \"acme\"\n[[tenants.sites]]\nid = \"p1\"\n{licences}")
    }

    fn lic(tier: &str, kind: &str, extra: &str) -> String {
        format!(
            "[[tenants.sites.licences]]\ntier = \"{tier}\"\nkind = \"{kind}\"\nstart = \"2025-01-01T00:00:00Z\"\n{extra}\n"
        )
    }

    fn decide(b: &LicenceBook, value: u64, now: &str, prev: Option<&Status>) -> Outcome {
        let s = Settings::default();
        let tenant = &b.tenants[0];
        let ctx = SiteContext {
            tenant: Some(tenant),
            site: tenant.sites.first(),
            catalogue: &tenant.catalogue,
            settings: &s,
            now: t(now),
        };
        decide_site(&ctx, value, prev)
    }

    const MID: &str = "2025-06-01T00:00:00Z";

    #[test]
    fn paid_licence_within_near_over() {
        let b = book(&site_doc(&lic("L", "paid", "")));
        assert_eq!(decide(&b, 500, MID, None).status, Status::WithinTier);
        assert_eq!(decide(&b, 900, MID, None).status, Status::NearLimit);
        assert_eq!(decide(&b, 899, MID, None).status, Status::WithinTier);
        assert_eq!(decide(&b, 1_000, MID, None).status, Status::NearLimit);
        let o = decide(&b, 2_000, MID, None);
        // 2,000 devices: one XL, never two L.
        assert_eq!(
            o.status,
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl)
            }
        );
        assert_eq!(o.licensed_tier, Some(TierNeed::one(Tier::L)));
        assert_eq!(o.licensed_capacity, Some(1_000));
    }

    #[test]
    fn above_5000_stacked_xl() {
        let b = book(&site_doc(&lic("XL", "paid", "")));
        let o = decide(&b, 7_500, MID, None);
        assert_eq!(
            o.status,
            Status::OverTier {
                tier_to_buy: TierNeed {
                    tier: Tier::Xl,
                    quantity: 2
                }
            }
        );
        let stacked = book(&site_doc(&lic("XL", "paid", "quantity = 2")));
        let o = decide(&stacked, 7_500, MID, None);
        assert_eq!(o.status, Status::WithinTier);
        assert_eq!(o.licensed_capacity, Some(10_000));
    }

    #[test]
    fn above_5000_2xl_from_catalogue_when_configured() {
        let doc = format!(
            "[catalogue]\n\"2XL\" = 10000\n{}",
            site_doc(&lic("XL", "paid", ""))
        );
        let b = book(&doc);
        let s = Settings {
            above_xl: crate::tier::AboveXlPolicy::LargerTiers,
            ..Settings::default()
        };
        let tenant = &b.tenants[0];
        let ctx = SiteContext {
            tenant: Some(tenant),
            site: tenant.sites.first(),
            catalogue: &tenant.catalogue,
            settings: &s,
            now: t(MID),
        };
        assert_eq!(
            decide_site(&ctx, 7_500, None).status,
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl2)
            }
        );
    }

    #[test]
    fn hysteresis_prevents_flapping() {
        let b = book(&site_doc(&lic("L", "paid", "")));
        let over = decide(&b, 1_001, MID, None).status;
        assert!(matches!(over, Status::OverTier { .. }));
        // Dropping just below the boundary keeps the site over tier...
        let o = decide(&b, 995, MID, Some(&over));
        assert_eq!(o.status, over);
        assert!(o.held_by_hysteresis);
        // ...until it clears it by 2% of capacity.
        assert_eq!(decide(&b, 980, MID, Some(&over)).status, Status::NearLimit);
        // Same for near limit → within.
        let near = Status::NearLimit;
        assert_eq!(decide(&b, 885, MID, Some(&near)).status, Status::NearLimit);
        assert_eq!(decide(&b, 879, MID, Some(&near)).status, Status::WithinTier);
        // The tier to buy does not flap either: an L site hovering at 5,000 devices.
        let two_xl = decide(&b, 5_001, MID, None).status;
        assert_eq!(
            two_xl,
            Status::OverTier {
                tier_to_buy: TierNeed {
                    tier: Tier::Xl,
                    quantity: 2
                }
            }
        );
        assert_eq!(decide(&b, 4_999, MID, Some(&two_xl)).status, two_xl);
        assert_eq!(
            decide(&b, 4_900, MID, Some(&two_xl)).status,
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl)
            }
        );
        // Going up is immediate.
        assert_eq!(
            decide(&b, 900, MID, Some(&Status::WithinTier)).status,
            Status::NearLimit
        );
    }

    #[test]
    fn trial_over_allowance_is_informational_until_trial_end_then_over_tier() {
        let b = book(&site_doc(&lic("L", "trial", "trial_days = 90")));
        // Trial ends 2025-04-01.
        let o = decide(&b, 1_500, "2025-02-01T00:00:00Z", None);
        assert_eq!(o.status, Status::TrialOverAllowance);
        assert_eq!(o.coverage, Coverage::Trial);
        assert_eq!(o.licensed_capacity, Some(1_000));
        // Within 1,000 during the trial: fine.
        assert_eq!(
            decide(&b, 400, "2025-02-01T00:00:00Z", None).status,
            Status::WithinTier
        );
        // Final 15 days: trial ending, extension possible.
        let o = decide(&b, 1_500, "2025-03-20T00:00:00Z", None);
        assert_eq!(o.status, Status::TrialEnding { days_left: 12 });
        // After the end: over tier, must buy the tier the count needs.
        let o = decide(&b, 1_500, "2025-04-01T00:00:00Z", None);
        assert_eq!(
            o.status,
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl)
            }
        );
        // A trial that ended within its allowance: grace period (no other licences).
        assert_eq!(
            decide(&b, 400, "2025-04-01T00:00:00Z", None).status,
            Status::GracePeriod { days_left: 30 }
        );
    }

    #[test]
    fn grace_service_stopped_and_retention_day_counting() {
        // Paid licence 2025-01-01 .. 2026-01-01.
        let b = book(&site_doc(&lic("L", "paid", "")));
        let at = |s| decide(&b, 100, s, None).status;
        assert_eq!(at("2025-12-31T23:59:59Z"), Status::WithinTier);
        assert_eq!(
            at("2026-01-01T00:00:00Z"),
            Status::GracePeriod { days_left: 30 }
        );
        assert_eq!(
            at("2026-01-01T01:00:00Z"),
            Status::GracePeriod { days_left: 30 }
        );
        assert_eq!(
            at("2026-01-30T00:00:00Z"),
            Status::GracePeriod { days_left: 1 }
        );
        assert_eq!(
            at("2026-01-30T23:59:59Z"),
            Status::GracePeriod { days_left: 1 }
        );
        // Day 30 after expiry: service stops; 90 days retention.
        assert_eq!(
            at("2026-01-31T00:00:00Z"),
            Status::ServiceStopped {
                retention_days_left: 90
            }
        );
        // Final 15 days of retention.
        assert_eq!(
            at("2026-04-15T00:00:00Z"),
            Status::ServiceStopped {
                retention_days_left: 16
            }
        );
        assert_eq!(
            at("2026-04-16T00:00:00Z"),
            Status::RetentionEnding { days_left: 15 }
        );
        assert_eq!(
            at("2026-05-01T00:00:00Z"),
            Status::RetentionEnding { days_left: 0 }
        );
    }

    #[test]
    fn grace_is_per_tenant_from_the_last_licence() {
        let doc = format!(
            "{}[[tenants.sites]]\nid = \"p2\"\n{}",
            site_doc(&lic("L", "paid", "")),
            lic("M", "paid", "end = \"2026-03-01T00:00:00Z\"")
        );
        let b = book(&doc);
        // p1's licence expired but the tenant still has p2's: p1 is unlicensed.
        assert_eq!(
            decide(&b, 100, "2026-02-01T00:00:00Z", None).status,
            Status::Unlicensed
        );
        // After p2's expires, grace counts from that last expiry.
        assert_eq!(
            decide(&b, 100, "2026-03-02T00:00:00Z", None).status,
            Status::GracePeriod { days_left: 29 }
        );
    }

    #[test]
    fn plan_change_takes_effect_one_hour_after_confirmation() {
        // An L licence, and an XL upgrade confirmed 2025-06-01 10:00.
        let doc = site_doc(&format!(
            "{}{}",
            lic("L", "paid", ""),
            "[[tenants.sites.licences]]\ntier = \"XL\"\nkind = \"paid\"\nstart = \"2025-06-01T10:00:00Z\"\nconfirmed_at = \"2025-06-01T10:00:00Z\"\n"
        ));
        let b = book(&doc);
        let before = decide(&b, 2_000, "2025-06-01T10:59:59Z", None);
        assert!(matches!(before.status, Status::OverTier { .. }));
        let after = decide(&b, 2_000, "2025-06-01T11:00:00Z", None);
        assert_eq!(after.status, Status::WithinTier);
        assert_eq!(after.licensed_tier, Some(TierNeed::one(Tier::Xl)));
    }

    #[test]
    fn unlicensed_site_and_unknown_tenant() {
        let b = book(&site_doc(""));
        let o = decide(&b, 50, MID, None);
        assert_eq!(o.status, Status::Unlicensed);
        assert_eq!(o.required_tier, Some(TierNeed::one(Tier::Xs)));
        let s = Settings::default();
        let cat = TierCatalogue::default();
        let ctx = SiteContext {
            tenant: None,
            site: None,
            catalogue: &cat,
            settings: &s,
            now: t(MID),
        };
        assert_eq!(decide_site(&ctx, 50, None).status, Status::Unlicensed);
    }

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
            Status::TrialEnding { days_left: 9 }
        );
        let b = book("[[tenants]]\nid = \"a\"\n[tenants.enterprise_iot.trial]\nstart = \"2025-05-01\"\ndays = 90\ndevice_limit = 100\n");
        assert_eq!(
            decide_eiot(&b.tenants[0], 150, None, &s, t(MID)).status,
            Status::TrialOverAllowance
        );
    }

    #[test]
    fn legacy_eiot_473_plus_1206_rounds_to_1700() {
        assert_eq!(round_up_100(473 + 1_206), 1_700);
        assert_eq!(round_up_100(1_700), 1_700);
        assert_eq!(round_up_100(0), 0);
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
