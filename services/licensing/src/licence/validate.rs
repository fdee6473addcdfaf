//! Validation: turns the document as written ([`super::raw`]) into a [`LicenceBook`],
//! naming the offending field in every error (`tenants[0].sites[2].licences[0].tier`).
//!
//! Time rules applied here (DESIGN §3): paid licences last one year unless the file
//! gives an end; a trial ends `trial_days` after its start and can only be extended in
//! its final days; only XL licences stack on one site.

use super::raw::{
    RawBook, RawCommitment, RawEiot, RawEiotTrial, RawExtension, RawLegacyOt, RawLicence, RawSite,
    RawTenant, RawTime,
};
use super::{
    Commitment, EiotTrial, EnterpriseIot, LegacyOtPlan, LicenceBook, LicenceError, LicenceKind,
    OtLicence, Site, Tenant, TrialExtension,
};
use crate::settings::Settings;
use crate::tier::{CatalogueOverride, Tier, TierCatalogue};
use chrono::{DateTime, Duration, Months, NaiveDate, Utc};

impl RawBook {
    pub(super) fn validate(self, settings: &Settings) -> Result<LicenceBook, LicenceError> {
        let base = with_override(&TierCatalogue::default(), &self.catalogue, "catalogue")?;
        let mut tenants: Vec<Tenant> = Vec::with_capacity(self.tenants.len());
        for (ti, rt) in self.tenants.iter().enumerate() {
            let tenant = validate_tenant(rt, &format!("tenants[{ti}]"), &base, &tenants, settings)?;
            tenants.push(tenant);
        }
        Ok(LicenceBook { tenants })
    }
}

/// One tenant; `earlier` are the tenants before it, whose ids it must not repeat.
fn validate_tenant(
    rt: &RawTenant,
    tp: &str,
    base: &TierCatalogue,
    earlier: &[Tenant],
    settings: &Settings,
) -> Result<Tenant, LicenceError> {
    let id = non_empty_id(&rt.id, &format!("{tp}.id"))?;
    if earlier.iter().any(|t| t.id == id) {
        return Err(LicenceError::invalid(
            format!("{tp}.id"),
            format!("duplicate tenant {id:?}"),
        ));
    }
    let catalogue = with_override(base, &rt.catalogue, &format!("{tp}.catalogue"))?;
    let mut sites: Vec<Site> = Vec::new();
    for (si, rs) in rt.sites.iter().enumerate() {
        let sp = format!("{tp}.sites[{si}]");
        let site = validate_site(rs, &sp, &id, &sites, &catalogue, settings)?;
        sites.push(site);
    }
    let enterprise_iot = match &rt.enterprise_iot {
        None => None,
        Some(re) => Some(validate_eiot(re, &format!("{tp}.enterprise_iot"))?),
    };
    let legacy_ot_plans = rt
        .legacy_ot_plans
        .iter()
        .enumerate()
        .map(|(pi, rp)| validate_legacy_ot(rp, &format!("{tp}.legacy_ot_plans[{pi}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tenant {
        id,
        catalogue,
        sites,
        enterprise_iot,
        legacy_ot_plans,
    })
}

/// `base` with the sizes of `o` applied, if any.
fn with_override(
    base: &TierCatalogue,
    o: &Option<CatalogueOverride>,
    path: &str,
) -> Result<TierCatalogue, LicenceError> {
    match o {
        Some(o) => base
            .with_override(o)
            .map_err(|e| LicenceError::invalid(path, e.to_string())),
        None => Ok(base.clone()),
    }
}

/// One site of `tenant`; `earlier` are the tenant's sites before it.
fn validate_site(
    rs: &RawSite,
    sp: &str,
    tenant: &str,
    earlier: &[Site],
    catalogue: &TierCatalogue,
    settings: &Settings,
) -> Result<Site, LicenceError> {
    let id = non_empty_id(&rs.id, &format!("{sp}.id"))?;
    if earlier.iter().any(|s| s.id == id) {
        return Err(LicenceError::invalid(
            format!("{sp}.id"),
            format!("duplicate site {id:?} in tenant {tenant:?}"),
        ));
    }
    let licences = rs
        .licences
        .iter()
        .enumerate()
        .map(|(li, rl)| validate_licence(rl, &format!("{sp}.licences[{li}]"), catalogue, settings))
        .collect::<Result<Vec<_>, _>>()?;
    check_single_non_xl(&licences, sp, settings.effective_delay())?;
    Ok(Site { id, licences })
}

fn validate_eiot(re: &RawEiot, ep: &str) -> Result<EnterpriseIot, LicenceError> {
    let trial = match &re.trial {
        None => None,
        Some(t) => Some(validate_eiot_trial(t, &format!("{ep}.trial"))?),
    };
    Ok(EnterpriseIot {
        e5_licences: re.e5_licences,
        standalone_licences: re.standalone_licences,
        trial,
        legacy_commitments: commitments(
            &re.legacy_commitments,
            &format!("{ep}.legacy_commitments"),
        )?,
    })
}

fn validate_eiot_trial(t: &RawEiotTrial, p: &str) -> Result<EiotTrial, LicenceError> {
    let days = *req(&t.days, &format!("{p}.days"))?;
    if days == 0 {
        return Err(LicenceError::invalid(
            format!("{p}.days"),
            "must be at least 1",
        ));
    }
    Ok(EiotTrial {
        start: req_time(&t.start, &format!("{p}.start"))?,
        days,
        device_limit: t.device_limit,
    })
}

fn validate_legacy_ot(rp: &RawLegacyOt, pp: &str) -> Result<LegacyOtPlan, LicenceError> {
    let id = non_empty_id(&rp.id, &format!("{pp}.id"))?;
    if rp.commitments.is_empty() {
        return Err(LicenceError::invalid(
            format!("{pp}.commitments"),
            "at least one commitment is required",
        ));
    }
    Ok(LegacyOtPlan {
        id,
        sites: rp.sites.clone(),
        commitments: commitments(&rp.commitments, &format!("{pp}.commitments"))?,
    })
}

fn commitments(raw: &[RawCommitment], path: &str) -> Result<Vec<Commitment>, LicenceError> {
    raw.iter()
        .enumerate()
        .map(|(i, c)| {
            let p = format!("{path}[{i}]");
            Ok(Commitment {
                devices: *req(&c.devices, &format!("{p}.devices"))?,
                confirmed_at: req_time(&c.confirmed_at, &format!("{p}.confirmed_at"))?,
            })
        })
        .collect()
}

/// One OT licence; checks run in the order of its fields, so the first error named is
/// the first wrong field.
fn validate_licence(
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
        None => start - settings.effective_delay(),
    };
    let (end, trial_days) = licence_term(rl, kind, start, lp)?;
    let cancelled_at = cancellation(rl, kind, lp)?;
    let mut lic = OtLicence {
        id: rl.id.clone(),
        tier,
        quantity,
        kind,
        start,
        end,
        confirmed_at,
        cancelled_at,
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
        (start + Duration::days(i64::from(days)), Some(days))
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
                .unwrap_or(start + Duration::days(365)),
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

/// Several non-XL licences in force on one site at the same time is not a valid
/// purchase ("2 Large instead of 1 XL" is refused by the documents).
fn check_single_non_xl(
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
                        "overlaps licences[{i}] with the same tier {}: only XL licences may be stacked on one site",
                        a.tier
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn parse_time(path: &str, raw: &RawTime) -> Result<DateTime<Utc>, LicenceError> {
    let s = raw.0.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    Err(LicenceError::invalid(
        path,
        format!("invalid time {s:?} (expected RFC 3339, e.g. 2025-01-31T00:00:00Z, or YYYY-MM-DD)"),
    ))
}

fn req<'a, T>(v: &'a Option<T>, path: &str) -> Result<&'a T, LicenceError> {
    v.as_ref()
        .ok_or_else(|| LicenceError::invalid(path, "missing required field"))
}

/// A required time field.
fn req_time(v: &Option<RawTime>, path: &str) -> Result<DateTime<Utc>, LicenceError> {
    parse_time(path, req(v, path)?)
}

fn non_empty_id(id: &Option<String>, path: &str) -> Result<String, LicenceError> {
    let id = req(id, path)?;
    if id.trim().is_empty() {
        return Err(LicenceError::invalid(path, "must not be empty"));
    }
    Ok(id.clone())
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
    fn precise_errors_for_common_mistakes() {
        let cases = [
            (
                ONE.replace("tier = \"L\"", "tier = \"L\"\nquantity = 2"),
                "tenants[0].sites[0].licences[0].quantity: only XL licences may be stacked",
            ),
            (
                ONE.replace("kind = \"paid\"", "kind = \"free\""),
                "tenants[0].sites[0].licences[0].kind: unknown kind \"free\"",
            ),
            (
                ONE.replace("start = \"2025-01-01T00:00:00Z\"", "start = \"yesterday\""),
                "tenants[0].sites[0].licences[0].start: invalid time \"yesterday\"",
            ),
            (
                ONE.replace("kind = \"paid\"", "kind = \"trial\""),
                "tenants[0].sites[0].licences[0].trial_days: missing required field",
            ),
            (
                ONE.replace("kind = \"paid\"", "kind = \"cancelled\""),
                "tenants[0].sites[0].licences[0].cancelled_at: missing required field",
            ),
            (
                ONE.replace("id = \"plant-1\"", "id = \"\""),
                "tenants[0].sites[0].id: must not be empty",
            ),
            (
                ONE.replace("tier = \"L\"", "tier = \"2XL\""),
                "tenants[0].sites[0].licences[0].tier: tier 2XL has no size",
            ),
        ];
        for (doc, want) in cases {
            let got = load(&doc).unwrap_err().to_string();
            assert!(got.starts_with(want), "got {got:?}, want prefix {want:?}");
        }
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

    #[test]
    fn per_tenant_catalogue_override() {
        let doc = r#"
[catalogue]
"2XL" = 10000
[[tenants]]
id = "a"
[tenants.catalogue]
M = 400
[[tenants]]
id = "b"
[tenants.catalogue]
M = 9000
"#;
        let e = load(doc).unwrap_err().to_string();
        assert!(e.starts_with("tenants[1].catalogue: "), "{e}");
        let b = load(&doc.replace("M = 9000", "S = 200")).unwrap();
        assert_eq!(b.tenants[0].catalogue.size(Tier::M), Some(400));
        assert_eq!(b.tenants[1].catalogue.size(Tier::M), Some(500));
        assert_eq!(b.tenants[1].catalogue.size(Tier::S), Some(200));
        assert_eq!(b.tenants[1].catalogue.size(Tier::Xl2), Some(10_000));
    }
}
