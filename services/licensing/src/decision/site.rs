//! OT site decisions: which licences cover a site at a time (paid, trial, a legacy
//! plan, or none), and its status and tier to buy for a count.
//!
//! [`decide_site`] looks up the coverage, then hands the count to the step for that
//! coverage; each step words its own notes.

use super::hysteresis::{level, sticky_need};
use super::{days_left, Coverage, Outcome, Status};
use crate::licence::{commitment_at, LegacyOtPlan, OtLicence, Site, Tenant};
use crate::settings::Settings;
use crate::tier::{Tier, TierCatalogue, TierNeed};
use chrono::{DateTime, Duration, Utc};

/// Everything needed to decide on one OT site.
#[derive(Debug, Clone, Copy)]
pub struct SiteContext<'a> {
    /// The tenant, when it is in the licence book.
    pub tenant: Option<&'a Tenant>,
    /// The site's id (a site may be covered by a legacy plan without being in the
    /// book's site list).
    pub site_id: &'a str,
    /// The site, when it is in the licence book.
    pub site: Option<&'a Site>,
    pub catalogue: &'a TierCatalogue,
    pub settings: &'a Settings,
    pub now: DateTime<Utc>,
}

/// Decides an OT site's status for a count `value`; a licence of the site cancelled for a
/// refund is noted beside whatever status the site has.
pub fn decide_site(ctx: &SiteContext<'_>, value: u64, prev: Option<&Status>) -> Outcome {
    let mut outcome = decide_coverage(ctx, value, prev);
    outcome.notes.extend(refund_notes(ctx));
    outcome
}

/// One note per licence of the site cancelled within seven days of its start (seeds:
/// "cancel a paid license within seven days ... prorated refund"), with its refund.
fn refund_notes(ctx: &SiteContext<'_>) -> Vec<String> {
    let delay = ctx.settings.effective_delay();
    ctx.site
        .map(|s| s.licences.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|l| l.cancelled_at.is_some_and(|c| c <= ctx.now))
        .filter_map(|l| {
            let fraction = l.refund_fraction(delay)?;
            let name =
                l.id.clone()
                    .unwrap_or_else(|| format!("{} licence", l.tier));
            Some(format!(
                "{name} cancelled {} within 7 days of its start: {:.1}% of its term refunded",
                l.cancelled_at?.format("%Y-%m-%d"),
                fraction * 100.0
            ))
        })
        .collect()
}

/// The status for a count from what covers the site.
fn decide_coverage(ctx: &SiteContext<'_>, value: u64, prev: Option<&Status>) -> Outcome {
    let delay = ctx.settings.effective_delay();
    let licences: Vec<&OtLicence> = ctx
        .site
        .map(|s| s.licences.iter().collect())
        .unwrap_or_default();
    let count = SiteCount {
        ctx,
        value,
        prev,
        required: ctx.catalogue.required(value, ctx.settings.above_xl),
    };
    let (paid, trial) = in_effect(&licences, ctx.now, delay);
    // Paid licences decide, unless a trial still in effect covers more (a customer who
    // buys an XS during a trial keeps the trial's allowance until it ends: adding a
    // licence never makes a site more over).
    let paid_capacity = ctx.catalogue.capacity(holding(&paid, ctx.catalogue));
    let trial_covers_more = trial.is_some() && paid_capacity < ctx.settings.trial_allowance;
    if !paid.is_empty() && ctx.tenant.is_some_and(|t| t.ot_plan_gone(ctx.now, delay)) {
        return count.billed_no_plan("OT");
    }
    if !paid.is_empty() && !trial_covers_more {
        return count.paid(&paid);
    }
    if let Some(trial) = trial {
        return count.trial(trial);
    }
    if let Some(plan) = legacy_plan(ctx, delay) {
        return count.legacy_plan(plan);
    }
    count.uncovered(&licences, delay)
}

/// The site's licences in effect at `now`: the paid ones, and the trial that ends last.
fn in_effect<'l>(
    licences: &[&'l OtLicence],
    now: DateTime<Utc>,
    delay: Duration,
) -> (Vec<&'l OtLicence>, Option<&'l OtLicence>) {
    let effective: Vec<&OtLicence> = licences
        .iter()
        .copied()
        .filter(|l| l.is_effective(now, delay))
        .collect();
    let paid = effective
        .iter()
        .copied()
        .filter(|l| !l.is_trial())
        .collect();
    let trial = effective
        .iter()
        .copied()
        .filter(|l| l.is_trial())
        .max_by_key(|l| l.term_end());
    (paid, trial)
}

/// The tenant's legacy plan covering the site with a commitment in force, if any.
fn legacy_plan<'a>(ctx: &SiteContext<'a>, delay: Duration) -> Option<&'a LegacyOtPlan> {
    ctx.tenant?
        .legacy_ot_plans
        .iter()
        .find(|p| p.covers(ctx.site_id) && commitment_at(&p.commitments, ctx.now, delay).is_some())
}

/// The tier holding of a set of paid licences: the stacked XL licences or the largest
/// other tier, whichever covers more (an XL next to a 3XL never shrinks the holding).
/// (Validation keeps a site's XL quantities within `u32`; the sum saturates if not.)
fn holding(paid: &[&OtLicence], catalogue: &TierCatalogue) -> TierNeed {
    let xl: u32 = paid
        .iter()
        .filter(|l| l.tier == Tier::Xl)
        .fold(0u32, |sum, l| sum.saturating_add(l.quantity));
    let stacked = (xl > 0).then_some(TierNeed {
        tier: Tier::Xl,
        quantity: xl,
    });
    let largest = paid
        .iter()
        .filter(|l| l.tier != Tier::Xl)
        .map(|l| TierNeed::one(l.tier))
        .max_by_key(|n| n.tier);
    [stacked, largest]
        .into_iter()
        .flatten()
        .max_by_key(|&n| catalogue.capacity(n))
        .unwrap_or(TierNeed::one(Tier::Xs))
}

/// One count at one site: what every step of [`decide_site`] needs.
struct SiteCount<'c, 'a> {
    ctx: &'c SiteContext<'a>,
    value: u64,
    prev: Option<&'c Status>,
    /// The smallest tier holding that covers `value`.
    required: TierNeed,
}

impl SiteCount<'_, '_> {
    /// An outcome for this count; `licensed` is the tier holding in effect and its
    /// capacity.
    fn outcome(
        &self,
        status: Status,
        coverage: Coverage,
        licensed: Option<(TierNeed, u64)>,
        held_by_hysteresis: bool,
        notes: Vec<String>,
    ) -> Outcome {
        Outcome {
            status,
            coverage,
            licensed_tier: licensed.map(|(tier, _)| tier),
            licensed_capacity: licensed.map(|(_, capacity)| capacity),
            required_tier: Some(self.required),
            billed: self.value,
            held_by_hysteresis,
            notes,
        }
    }

    /// Level 0/1/2 against `capacity`, with hysteresis from the previous status.
    fn level(&self, capacity: u64) -> (u8, bool) {
        let prev_level = self.prev.and_then(Status::level);
        level(self.value, capacity, prev_level, self.ctx.settings)
    }

    /// Paid licences in effect: within, near the limit, or over the tier held.
    fn paid(&self, paid: &[&OtLicence]) -> Outcome {
        let held_tier = holding(paid, self.ctx.catalogue);
        let capacity = self.ctx.catalogue.capacity(held_tier);
        let (lvl, held) = self.level(capacity);
        let status = match lvl {
            2 => return self.over_tier(held_tier, capacity, held),
            1 => Status::NearLimit,
            _ => Status::WithinTier,
        };
        let mut notes = Vec::new();
        if held {
            notes.push("status held by hysteresis".into());
        }
        let licensed = Some((held_tier, capacity));
        self.outcome(status, Coverage::Paid, licensed, held, notes)
    }

    /// Over the tier held: the tier to buy, kept from the previous run while the count
    /// stays near it.
    fn over_tier(&self, held_tier: TierNeed, capacity: u64, held: bool) -> Outcome {
        let value = self.value;
        let prev_need = match self.prev {
            Some(Status::OverTier { tier_to_buy }) => Some(*tier_to_buy),
            _ => None,
        };
        let need = sticky_need(self.ctx.catalogue, self.ctx.settings, value, prev_need);
        let notes = vec![format!(
            "{value} devices exceed {held_tier} ({capacity}); the site needs {need}"
        )];
        let mut out = self.outcome(
            Status::OverTier { tier_to_buy: need },
            Coverage::Paid,
            Some((held_tier, capacity)),
            held || need != self.required,
            notes,
        );
        out.required_tier = Some(need);
        out
    }

    /// Paid licences in effect while the plan that runs the service was cancelled in
    /// Azure (the documents: cancelling the plan removes the services from the
    /// subscription but does not cancel the Microsoft 365 licence, which stays billed).
    fn billed_no_plan(&self, what: &str) -> Outcome {
        let notes = vec![format!(
            "the {what} plan was cancelled in Azure: monitoring stopped, the Microsoft 365 licence is still billed; cancel it in the Microsoft 365 admin center or restore the plan"
        )];
        self.outcome(Status::BilledNoPlan, Coverage::None, None, false, notes)
    }

    /// A trial in effect: its allowance, and whether it can be extended now.
    fn trial(&self, trial: &OtLicence) -> Outcome {
        let (s, now, value) = (self.ctx.settings, self.ctx.now, self.value);
        let allowance = s.trial_allowance;
        let end = trial.term_end();
        let (lvl, held) = self.level(allowance);
        let mut notes = Vec::new();
        if value > allowance {
            notes.push(format!(
                "trial covers {allowance} devices; {value} seen: monitoring continues, at trial end ({}) the site needs {}",
                end.to_rfc3339(),
                self.required
            ));
        }
        let status = if trial.can_extend(now, s.trial_ending_days) {
            notes.push("trial can be extended now".into());
            // Shown beside the day counter, never hidden by it.
            Status::TrialEnding {
                days_left: days_left(end, now),
                over_allowance: lvl == 2,
            }
        } else {
            match lvl {
                2 => Status::TrialOverAllowance,
                1 => Status::NearLimit,
                _ => Status::WithinTier,
            }
        };
        let licensed = Some((TierNeed::one(trial.tier), allowance));
        self.outcome(status, Coverage::Trial, licensed, held, notes)
    }

    /// Covered by a legacy plan, whose committed devices are decided per plan.
    fn legacy_plan(&self, plan: &LegacyOtPlan) -> Outcome {
        let notes = vec![format!(
            "covered by legacy plan {} (committed devices are checked per plan)",
            plan.id
        )];
        self.outcome(Status::WithinTier, Coverage::LegacyPlan, None, false, notes)
    }

    /// No licence in effect: grace or retention if the tenant has lapsed, over tier if
    /// the site's trial ended above its allowance, else unlicensed.
    fn uncovered(&self, licences: &[&OtLicence], delay: Duration) -> Outcome {
        let ctx = self.ctx;
        let trial_ended_over = self.trial_ended_over(licences, delay);
        let lapsed = ctx
            .tenant
            .filter(|t| t.legacy_ot_plans.is_empty())
            .and_then(|t| t.last_expiry(ctx.now, delay));
        if let Some(expired) = lapsed {
            return self.lapsed(expired, trial_ended_over);
        }
        if trial_ended_over {
            let notes = vec!["trial ended above its allowance".into()];
            return self.must_buy_required(notes);
        }
        let notes = vec![
            match (ctx.tenant, ctx.site) {
                (None, _) => "tenant not in the licence book".to_string(),
                (Some(_), None) => "site not in the licence book".to_string(),
                (Some(_), Some(_)) => "no licence in effect for this site".to_string(),
            },
            format!("the site needs {}", self.required),
        ];
        self.outcome(Status::Unlicensed, Coverage::None, None, false, notes)
    }

    /// Whether the site's last licence was a trial that ended with the count above the
    /// trial allowance: the site must then be licensed at the tier its count needs.
    fn trial_ended_over(&self, licences: &[&OtLicence], delay: Duration) -> bool {
        let last = licences
            .iter()
            .filter(|l| l.effective_until(delay) <= self.ctx.now)
            .max_by_key(|l| l.effective_until(delay));
        last.is_some_and(|l| l.is_trial()) && self.value > self.ctx.settings.trial_allowance
    }

    /// Over tier with nothing held: buy the tier the count needs.
    fn must_buy_required(&self, notes: Vec<String>) -> Outcome {
        let status = Status::OverTier {
            tier_to_buy: self.required,
        };
        self.outcome(status, Coverage::None, None, false, notes)
    }

    /// The tenant's last licence expired at `expired`: grace period, then the service
    /// stops and data is retained for a while.
    fn lapsed(&self, expired: DateTime<Utc>, trial_ended_over: bool) -> Outcome {
        let (s, now) = (self.ctx.settings, self.ctx.now);
        let grace_end = s.service_stop(expired);
        if now >= grace_end {
            return self.stopped(grace_end);
        }
        let left = days_left(grace_end, now);
        let mut notes = vec![format!(
            "tenant's last licence expired {}; grace period ends {}",
            expired.to_rfc3339(),
            grace_end.to_rfc3339()
        )];
        if trial_ended_over {
            notes.push(format!(
                "trial ended above its allowance; {left}d of grace left"
            ));
            return self.must_buy_required(notes);
        }
        let status = Status::GracePeriod { days_left: left };
        self.outcome(status, Coverage::None, None, false, notes)
    }

    /// Grace ended at `grace_end`: the service has stopped; warn in the final days of
    /// data retention.
    fn stopped(&self, grace_end: DateTime<Utc>) -> Outcome {
        let (s, now) = (self.ctx.settings, self.ctx.now);
        let retention_end = s.retention_end(grace_end);
        let retention_left = days_left(retention_end, now);
        if now >= retention_end {
            let notes = vec![format!(
                "service stopped {}; retention ended {}: the data has been deleted",
                grace_end.to_rfc3339(),
                retention_end.to_rfc3339()
            )];
            return self.outcome(Status::RetentionOver, Coverage::None, None, false, notes);
        }
        let notes = vec![format!(
            "service stopped {}; data retained until {}",
            grace_end.to_rfc3339(),
            retention_end.to_rfc3339()
        )];
        let status = if retention_left > i64::from(s.retention_warning_days) {
            Status::ServiceStopped {
                retention_days_left: retention_left,
            }
        } else {
            Status::RetentionEnding {
                days_left: retention_left,
            }
        };
        self.outcome(status, Coverage::None, None, false, notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::test_support::{book, decide, decide_with, lic, site_doc, t, MID};

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
        assert_eq!(
            decide_with(&b, &s, 7_500, MID, None).status,
            Status::OverTier {
                tier_to_buy: TierNeed::one(Tier::Xl2)
            }
        );
    }

    #[test]
    fn an_xl_beside_a_3xl_never_shrinks_the_holding() {
        let doc = format!(
            "[catalogue]\n\"2XL\" = 10000\n\"3XL\" = 15000\n{}",
            site_doc(&format!(
                "{}{}",
                lic("3XL", "paid", ""),
                lic("XL", "paid", "")
            ))
        );
        let o = decide(&book(&doc), 12_000, MID, None);
        assert_eq!(o.licensed_tier, Some(TierNeed::one(Tier::Xl3)));
        assert_eq!(o.licensed_capacity, Some(15_000));
        assert_eq!(o.status, Status::WithinTier);
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
        // ...and the over-allowance is shown beside it, not hidden by it.
        assert_eq!(
            o.status,
            Status::TrialEnding {
                days_left: 12,
                over_allowance: true
            }
        );
        assert_eq!(
            o.status.to_string(),
            "TRIAL_ENDING (12d left) + OVER_ALLOWANCE"
        );
        assert_eq!(
            decide(&b, 400, "2025-03-20T00:00:00Z", None).status,
            Status::TrialEnding {
                days_left: 12,
                over_allowance: false
            }
        );
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
        // Paid licence 2025-01-01 .. 2026-01-01, recurring billing off.
        let b = book(&site_doc(&lic("L", "paid", "recurring_billing = false")));
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
            at("2026-04-30T23:00:00Z"),
            Status::RetentionEnding { days_left: 1 }
        );
        // Retention over: the data is deleted, and it stays so (never "0 days" forever).
        assert_eq!(at("2026-05-01T00:00:00Z"), Status::RetentionOver);
        assert_eq!(at("2027-06-01T00:00:00Z"), Status::RetentionOver);
    }

    /// Issue 13: cancelling the OT plan in Azure removes OT and Enterprise IoT from the
    /// subscription while the M365 licences stay billed; cancelling only the Enterprise
    /// IoT plan affects only Enterprise IoT.
    #[test]
    fn a_cancelled_azure_plan_leaves_licences_billed_without_service() {
        let eiot = "[tenants.enterprise_iot]\ne5_licences = 10\n";
        let doc = |plan: &str| {
            format!(
                "[[tenants]]\nid = \"acme\"\n{plan}\n[[tenants.sites]]\nid = \"p1\"\n{}{eiot}",
                lic("L", "paid", "")
            )
        };
        let settings = Settings::default();
        let eiot_status = |b: &crate::licence::LicenceBook, now: &str| {
            crate::decision::eiot::decide_eiot(&b.tenants[0], 20, None, &settings, t(now)).status
        };
        let ot = book(&doc("ot_plan_cancelled_at = \"2025-06-01T00:00:00Z\""));
        // Effective one hour after the cancellation.
        assert_eq!(
            decide(&ot, 100, "2025-06-01T00:30:00Z", None).status,
            Status::WithinTier
        );
        assert_eq!(
            decide(&ot, 100, "2025-06-01T02:00:00Z", None).status,
            Status::BilledNoPlan
        );
        assert_eq!(
            eiot_status(&ot, "2025-06-01T02:00:00Z"),
            Status::BilledNoPlan
        );
        let only_eiot = book(&doc("eiot_plan_cancelled_at = \"2025-06-01T00:00:00Z\""));
        assert_eq!(
            decide(&only_eiot, 100, "2025-06-01T02:00:00Z", None).status,
            Status::WithinTier
        );
        assert_eq!(
            eiot_status(&only_eiot, "2025-06-01T02:00:00Z"),
            Status::BilledNoPlan
        );
        assert_eq!(
            eiot_status(&only_eiot, "2025-05-31T00:00:00Z"),
            Status::WithinTier
        );
    }

    /// Issue 13: a paid licence without an end renews every year while recurring billing
    /// is on (the default), so it never expires.
    #[test]
    fn a_paid_licence_renews_unless_recurring_billing_is_off() {
        let b = book(&site_doc(&lic("L", "paid", "")));
        for now in [
            "2025-12-31T23:59:59Z",
            "2026-01-01T00:00:00Z",
            "2031-06-01T00:00:00Z",
        ] {
            assert_eq!(
                decide(&b, 100, now, None).status,
                Status::WithinTier,
                "{now}"
            );
        }
        let l = &b.tenants[0].sites[0].licences[0];
        assert_eq!(
            l.next_renewal(t("2026-03-01T00:00:00Z")),
            Some(t("2027-01-01T00:00:00Z"))
        );
        let off = book(&site_doc(&lic("L", "paid", "recurring_billing = false")));
        assert_eq!(
            decide(&off, 100, "2026-01-01T00:00:00Z", None).status,
            Status::GracePeriod { days_left: 30 }
        );
        assert_eq!(
            off.tenants[0].sites[0].licences[0].next_renewal(t("2025-03-01T00:00:00Z")),
            None
        );
    }

    /// Issue 13: cancelled within seven days of the start, the licence ends one hour after
    /// the confirmation with a prorated refund; later, it runs to the end of its term.
    #[test]
    fn cancellation_refunds_within_seven_days_and_runs_to_term_end_after() {
        let early = book(&site_doc(&lic(
            "L",
            "cancelled",
            "cancelled_at = \"2025-01-03T00:00:00Z\"",
        )));
        let l = &early.tenants[0].sites[0].licences[0];
        let hour = chrono::Duration::hours(1);
        assert_eq!(l.effective_until(hour), t("2025-01-03T01:00:00Z"));
        let refund = l.refund_fraction(hour).unwrap();
        // 2 days and 1 hour of a 365-day term used.
        let want = 1.0 - (2.0 * 24.0 + 1.0) / (365.0 * 24.0);
        assert!((refund - want).abs() < 1e-9, "{refund} vs {want}");
        let outcome = decide(&early, 100, "2025-01-03T02:00:00Z", None);
        assert_eq!(outcome.status, Status::GracePeriod { days_left: 30 });
        // The refund is reported beside the status.
        assert!(
            outcome
                .notes
                .iter()
                .any(|n| n.contains("cancelled 2025-01-03 within 7 days")
                    && n.contains("99.4% of its term refunded")),
            "{:?}",
            outcome.notes
        );
        let late = book(&site_doc(&lic(
            "L",
            "cancelled",
            "cancelled_at = \"2025-03-01T00:00:00Z\"",
        )));
        let l = &late.tenants[0].sites[0].licences[0];
        assert_eq!(l.refund_fraction(hour), None);
        assert_eq!(l.effective_until(hour), t("2026-01-01T00:00:00Z"));
        let outcome = decide(&late, 100, "2025-12-31T00:00:00Z", None);
        assert_eq!(outcome.status, Status::WithinTier);
        assert!(
            !outcome.notes.iter().any(|n| n.contains("refunded")),
            "{:?}",
            outcome.notes
        );
    }

    #[test]
    fn grace_is_per_tenant_from_the_last_licence() {
        let doc = format!(
            "{}[[tenants.sites]]\nid = \"p2\"\n{}",
            site_doc(&lic("L", "paid", "recurring_billing = false")),
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
    fn site_covered_only_by_a_legacy_plan_is_not_unlicensed() {
        // "depot" is named only by the plan, not in the tenant's site list.
        let b = book("[[tenants]]\nid = \"a\"\n[[tenants.legacy_ot_plans]]\nid = \"plan\"\nsites = [\"depot\"]\ncommitments = [{ devices = 3000, confirmed_at = \"2025-01-01\" }]\n");
        let s = Settings::default();
        let tenant = &b.tenants[0];
        let ctx = |site_id| SiteContext {
            tenant: Some(tenant),
            site_id,
            site: None,
            catalogue: &tenant.catalogue,
            settings: &s,
            now: t(MID),
        };
        let o = decide_site(&ctx("depot"), 2_000, None);
        assert_eq!(o.status, Status::WithinTier);
        assert_eq!(o.coverage, Coverage::LegacyPlan);
        // A site the plan does not name is still unlicensed.
        assert_eq!(
            decide_site(&ctx("elsewhere"), 2_000, None).status,
            Status::Unlicensed
        );
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
            site_id: "p1",
            site: None,
            catalogue: &cat,
            settings: &s,
            now: t(MID),
        };
        assert_eq!(decide_site(&ctx, 50, None).status, Status::Unlicensed);
    }
}
