//! Validation of one OT site licence, field by field, and of the licences of one site
//! together (only XL licences stack).
//!
//! Time rules applied here (DESIGN §3): paid licences last one year unless the file
//! gives an end; a trial ends `trial_days` after its start and can only be extended in
//! its final days.

use super::fields::{days_after, parse_time, req, req_time};
use super::raw::{RawExtension, RawLicence};
use super::{LicenceError, LicenceKind, OtLicence, TrialExtension};
use crate::settings::Settings;
use crate::tier::{Tier, TierCatalogue};
use chrono::{DateTime, Duration, Months, Utc};

/// One OT licence; checks run in the order of its fields, so the first error named is
/// the first wrong field.
pub(super) fn validate_licence(
    rl: &RawLicence,
    lp: &str,
    catalogue: &TierCatalogue,
    settings: &Settings,
) -> Result<OtLicence, LicenceError> {
    let kind = licence_kind(rl, lp)?;
    let tier = licence_tier(rl, kind, lp, catalogue)?;
    let quantity = licence_quantity(rl, tier, lp)?;
    let start = req_time(&rl.start, &format!("{lp}.start"))?;
    let confirmed_at = match &rl.confirmed_at {
        Some(t) => parse_time(&format!("{lp}.confirmed_at"), t)?,
        None => crate::time::minus(start, settings.effective_delay()),
    };
    let (end, trial_days) = licence_term(rl, kind, start, lp)?;
    let cancelled_at = cancellation(rl, kind, lp)?;
    let renews = renewal(rl, kind, lp)?;
    let mut lic = OtLicence {
        id: rl.id.clone(),
        tier,
        quantity,
        kind,
        start,
        end,
        confirmed_at,
        cancelled_at,
        renews,
        trial_days,
        extensions: Vec::new(),
    };
    for (ei, re) in rl.extensions.iter().enumerate() {
        let extension = validate_extension(re, &lic, &format!("{lp}.extensions[{ei}]"), settings)?;
        lic.extensions.push(extension);
    }
    Ok(lic)
}

fn licence_kind(rl: &RawLicence, lp: &str) -> Result<LicenceKind, LicenceError> {
    let kind_s = req(&rl.kind, &format!("{lp}.kind"))?;
    match kind_s.trim().to_ascii_lowercase().as_str() {
        "trial" => Ok(LicenceKind::Trial),
        "paid" => Ok(LicenceKind::Paid),
        "cancelled" | "canceled" => Ok(LicenceKind::Cancelled),
        other => Err(LicenceError::invalid(
            format!("{lp}.kind"),
            format!("unknown kind {other:?} (known: trial, paid, cancelled)"),
        )),
    }
}

/// The tier, which must have a size in the tenant's catalogue.
fn licence_tier(
    rl: &RawLicence,
    kind: LicenceKind,
    lp: &str,
    catalogue: &TierCatalogue,
) -> Result<Tier, LicenceError> {
    // A trial covers a Large site unless the file says otherwise.
    if rl.tier.is_none() && kind == LicenceKind::Trial {
        return Ok(Tier::L);
    }
    let t = req(&rl.tier, &format!("{lp}.tier"))?;
    let tier: Tier = t.parse().map_err(|_| {
        LicenceError::invalid(
            format!("{lp}.tier"),
            format!("unknown tier {t:?} (known: {})", catalogue.known_names()),
        )
    })?;
    if catalogue.size(tier).is_none() {
        return Err(LicenceError::invalid(
            format!("{lp}.tier"),
            format!(
                "tier {tier} has no size in this tenant's catalogue (known: {}); add it under [catalogue]",
                catalogue.known_names()
            ),
        ));
    }
    Ok(tier)
}

fn licence_quantity(rl: &RawLicence, tier: Tier, lp: &str) -> Result<u32, LicenceError> {
    let quantity = rl.quantity.unwrap_or(1);
    if quantity == 0 {
        return Err(LicenceError::invalid(
            format!("{lp}.quantity"),
            "must be at least 1",
        ));
    }
    if quantity > 1 && !tier.stackable() {
        return Err(LicenceError::invalid(
            format!("{lp}.quantity"),
            format!("only XL licences may be stacked on one site; buy the tier that covers the site instead of {quantity} x {tier}"),
        ));
    }
    Ok(quantity)
}

/// The end of the term and, for a trial, its length: a trial's end follows from
/// `trial_days`, a paid licence's from `end` or one year after its start.
fn licence_term(
    rl: &RawLicence,
    kind: LicenceKind,
    start: DateTime<Utc>,
    lp: &str,
) -> Result<(DateTime<Utc>, Option<u32>), LicenceError> {
    let (end, trial_days) = if kind == LicenceKind::Trial {
        if rl.end.is_some() {
            return Err(LicenceError::invalid(
                format!("{lp}.end"),
                "a trial's end is start + trial_days; remove `end`",
            ));
        }
        let days = *req(&rl.trial_days, &format!("{lp}.trial_days"))?;
        if days == 0 {
            return Err(LicenceError::invalid(
                format!("{lp}.trial_days"),
                "must be at least 1",
            ));
        }
        (
            days_after(&format!("{lp}.trial_days"), start, days)?,
            Some(days),
        )
    } else {
        if rl.trial_days.is_some() {
            return Err(LicenceError::invalid(
                format!("{lp}.trial_days"),
                "only trial licences have a trial length",
            ));
        }
        let end = match &rl.end {
            Some(t) => parse_time(&format!("{lp}.end"), t)?,
            // Licences last one year.
            None => start
                .checked_add_months(Months::new(12))
                .unwrap_or(crate::time::plus_days(start, 365)),
        };
        (end, None)
    };
    if end <= start {
        return Err(LicenceError::invalid(
            format!("{lp}.end"),
            "must be after start",
        ));
    }
    Ok((end, trial_days))
}

/// When the cancellation was confirmed: required for, and only for, a cancelled
/// licence.
fn cancellation(
    rl: &RawLicence,
    kind: LicenceKind,
    lp: &str,
) -> Result<Option<DateTime<Utc>>, LicenceError> {
    match (&rl.cancelled_at, kind) {
        (Some(t), LicenceKind::Cancelled) => {
            Ok(Some(parse_time(&format!("{lp}.cancelled_at"), t)?))
        }
        (None, LicenceKind::Cancelled) => Err(LicenceError::invalid(
            format!("{lp}.cancelled_at"),
            "missing required field for a cancelled licence",
        )),
        (Some(_), _) => Err(LicenceError::invalid(
            format!("{lp}.cancelled_at"),
            "only cancelled licences have a cancellation time (set kind = \"cancelled\")",
        )),
        (None, _) => Ok(None),
    }
}

/// Whether a paid licence renews: without an `end` it does unless `recurring_billing =
/// false` (the documents: a licence renews automatically unless recurring billing is
/// turned off). A fixed `end` and trials never renew.
fn renewal(rl: &RawLicence, kind: LicenceKind, lp: &str) -> Result<bool, LicenceError> {
    let path = format!("{lp}.recurring_billing");
    match (rl.recurring_billing, kind, rl.end.is_some()) {
        (Some(_), LicenceKind::Trial, _) => Err(LicenceError::invalid(
            path,
            "trials do not renew; remove recurring_billing",
        )),
        (Some(true), _, true) => Err(LicenceError::invalid(
            path,
            "a licence that renews has no `end`; remove one of them",
        )),
        (_, LicenceKind::Trial, _) | (_, _, true) => Ok(false),
        (setting, _, false) => Ok(setting.unwrap_or(true)),
    }
}

/// A trial extension, which must be requested in the final days of `lic` as extended
/// so far.
fn validate_extension(
    re: &RawExtension,
    lic: &OtLicence,
    ep: &str,
    settings: &Settings,
) -> Result<TrialExtension, LicenceError> {
    if lic.kind != LicenceKind::Trial {
        return Err(LicenceError::invalid(ep, "only trials can be extended"));
    }
    let requested_at = req_time(&re.requested_at, &format!("{ep}.requested_at"))?;
    let days = *req(&re.days, &format!("{ep}.days"))?;
    days_after(&format!("{ep}.days"), lic.term_end(), days)?;
    if !lic.can_extend(requested_at, settings.trial_ending_days) {
        return Err(LicenceError::invalid(
            format!("{ep}.requested_at"),
            format!(
                "a trial can only be extended in its final {} days (trial ends {})",
                settings.trial_ending_days,
                lic.term_end().to_rfc3339()
            ),
        ));
    }
    Ok(TrialExtension { requested_at, days })
}

/// The XL licences of one site, stacked, must stay countable: their quantities sum
/// within `u32` and their capacity within `u64`. The error names the licence whose
/// quantity overflows.
pub(super) fn check_xl_capacity(
    licences: &[OtLicence],
    site_path: &str,
    catalogue: &TierCatalogue,
) -> Result<(), LicenceError> {
    let mut total: u32 = 0;
    for (i, l) in licences.iter().enumerate() {
        if l.tier != Tier::Xl {
            continue;
        }
        total = total
            .checked_add(l.quantity)
            .filter(|&q| catalogue.xl_size().checked_mul(u64::from(q)).is_some())
            .ok_or_else(|| {
                LicenceError::invalid(
                    format!("{site_path}.licences[{i}].quantity"),
                    "the site's XL licences together cover more devices than can be counted",
                )
            })?;
    }
    Ok(())
}

/// Several non-XL licences in force on one site at the same time is not a valid
/// purchase ("2 Large instead of 1 XL" is refused by the documents).
pub(super) fn check_single_non_xl(
    licences: &[OtLicence],
    site_path: &str,
    delay: Duration,
) -> Result<(), LicenceError> {
    let paid: Vec<(usize, &OtLicence)> = licences
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.is_trial() && l.tier != Tier::Xl)
        .collect();
    for (n, (i, a)) in paid.iter().enumerate() {
        for (j, b) in paid.iter().skip(n + 1) {
            let overlap = a.effective_from(delay) < b.effective_until(delay)
                && b.effective_from(delay) < a.effective_until(delay);
            // Same tier overlapping is a stack; different tiers overlapping is an
            // upgrade in progress, which is fine.
            if overlap && a.tier == b.tier {
                return Err(LicenceError::invalid(
                    format!("{site_path}.licences[{j}]"),
                    format!(
                        "overlaps licences[{i}] with the same tier {}: only XL licences may be stacked on one site{}",
                        a.tier,
                        if a.renews {
                            " (licences[{i}] has no `end`, so it renews every year: give it an `end` or set recurring_billing = false)".replace("{i}", &i.to_string())
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::licence::test_support::{load, t, ONE};

    #[test]
    fn loads_minimal_file_with_defaults() {
        let b = load(ONE).unwrap();
        let l = &b.tenants[0].sites[0].licences[0];
        assert_eq!(l.tier, Tier::L);
        assert_eq!(l.quantity, 1);
        // Licences last one year.
        assert_eq!(l.end, t("2026-01-01T00:00:00Z"));
        // Without a confirmation time the licence is effective from its start.
        assert_eq!(l.effective_from(Duration::hours(1)), l.start);
    }

    #[test]
    fn unknown_tier_names_the_field() {
        let bad = r#"
[[tenants]]
id = "acme"
[[tenants.sites]]
id = "a"
[[tenants.sites]]
id = "b"
[[tenants.sites]]
id = "c"
[[tenants.sites.licences]]
tier = "XXL"
kind = "paid"
start = "2025-01-01"
"#;
        assert_eq!(
            load(bad).unwrap_err().to_string(),
            r#"tenants[0].sites[2].licences[0].tier: unknown tier "XXL" (known: XS, S, M, L, XL)"#
        );
    }

    #[test]
    fn xl_may_be_stacked_and_two_overlapping_l_may_not() {
        let ok = ONE.replace("tier = \"L\"", "tier = \"XL\"\nquantity = 3");
        assert_eq!(
            load(&ok).unwrap().tenants[0].sites[0].licences[0].quantity,
            3
        );
        let two_l = format!(
            "{ONE}\n[[tenants.sites.licences]]\ntier = \"L\"\nkind = \"paid\"\nstart = \"2025-03-01\"\n"
        );
        let e = load(&two_l).unwrap_err().to_string();
        assert!(
            e.starts_with("tenants[0].sites[0].licences[1]: overlaps licences[0]"),
            "{e}"
        );
    }
}
