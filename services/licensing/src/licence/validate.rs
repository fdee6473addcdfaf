//! Validation: turns the document as written ([`super::raw`]) into a [`LicenceBook`],
//! part by part (tenants, sites, Enterprise IoT, legacy plans), naming the offending
//! field in every error (`tenants[0].sites[2].licences[0].tier`). One OT licence's own
//! rules are in [`super::validate_ot`].

use super::fields::{days_after, non_empty_id, parse_time, req, req_time};
use super::raw::{RawBook, RawCommitment, RawEiot, RawEiotTrial, RawLegacyOt, RawSite, RawTenant};
use super::validate_ot::{check_single_non_xl, check_xl_capacity, validate_licence};
use super::{
    Commitment, CommitmentTerm, EiotTrial, EnterpriseIot, LegacyOtPlan, LicenceBook, LicenceError,
    Site, Tenant,
};
use crate::settings::Settings;
use crate::tier::{CatalogueOverride, TierCatalogue};

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
    let mut site_ids = std::collections::HashSet::new();
    for (si, rs) in rt.sites.iter().enumerate() {
        let sp = format!("{tp}.sites[{si}]");
        let site = validate_site(rs, &sp, &catalogue, settings)?;
        if !site_ids.insert(site.id.clone()) {
            return Err(LicenceError::invalid(
                format!("{sp}.id"),
                format!("duplicate site {:?} in tenant {id:?}", site.id),
            ));
        }
        sites.push(site);
    }
    let enterprise_iot = match &rt.enterprise_iot {
        None => None,
        Some(re) => Some(validate_eiot(
            re,
            &format!("{tp}.enterprise_iot"),
            settings,
        )?),
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
        ot_plan_cancelled_at: optional_time(
            &rt.ot_plan_cancelled_at,
            &format!("{tp}.ot_plan_cancelled_at"),
        )?,
        eiot_plan_cancelled_at: optional_time(
            &rt.eiot_plan_cancelled_at,
            &format!("{tp}.eiot_plan_cancelled_at"),
        )?,
        site_index: Default::default(),
    })
}

/// An optional time field, checked like every other (an error names `path`).
fn optional_time(
    t: &Option<super::raw::RawTime>,
    path: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, LicenceError> {
    t.as_ref().map(|t| parse_time(path, t)).transpose()
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

/// One site (the caller refuses duplicate ids).
fn validate_site(
    rs: &RawSite,
    sp: &str,
    catalogue: &TierCatalogue,
    settings: &Settings,
) -> Result<Site, LicenceError> {
    let id = non_empty_id(&rs.id, &format!("{sp}.id"))?;
    let licences = rs
        .licences
        .iter()
        .enumerate()
        .map(|(li, rl)| validate_licence(rl, &format!("{sp}.licences[{li}]"), catalogue, settings))
        .collect::<Result<Vec<_>, _>>()?;
    check_single_non_xl(&licences, sp, settings.effective_delay())?;
    check_xl_capacity(&licences, sp, catalogue)?;
    Ok(Site { id, licences })
}

fn validate_eiot(
    re: &RawEiot,
    ep: &str,
    settings: &Settings,
) -> Result<EnterpriseIot, LicenceError> {
    let e5_devices = re
        .e5_licences
        .checked_mul(settings.devices_per_e5)
        .ok_or_else(|| {
            LicenceError::invalid(
                format!("{ep}.e5_licences"),
                format!(
                    "{} licences x {} devices each is more devices than can be counted",
                    re.e5_licences, settings.devices_per_e5
                ),
            )
        })?;
    if e5_devices.checked_add(re.standalone_licences).is_none() {
        return Err(LicenceError::invalid(
            format!("{ep}.standalone_licences"),
            "E5 and standalone licences together cover more devices than can be counted",
        ));
    }
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
    let start = req_time(&t.start, &format!("{p}.start"))?;
    days_after(&format!("{p}.days"), start, days)?;
    Ok(EiotTrial {
        start,
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
    let term = match rp.term.as_deref() {
        None | Some("monthly") => CommitmentTerm::Monthly,
        Some("annual") => CommitmentTerm::Annual,
        Some(other) => {
            return Err(LicenceError::invalid(
                format!("{pp}.term"),
                format!("unknown term {other:?} (known: monthly, annual)"),
            ))
        }
    };
    if rp.committed_sites.is_some() && term != CommitmentTerm::Annual {
        return Err(LicenceError::invalid(
            format!("{pp}.committed_sites"),
            "only annual plans commit to a number of sites (set term = \"annual\")",
        ));
    }
    Ok(LegacyOtPlan {
        id,
        sites: rp.sites.clone(),
        commitments: commitments(&rp.commitments, &format!("{pp}.commitments"))?,
        term,
        committed_sites: rp.committed_sites,
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

#[cfg(test)]
mod tests {
    use crate::licence::test_support::{load, ONE};
    use crate::tier::Tier;

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
    fn out_of_range_numbers_and_dates_name_the_field() {
        let cases = [
            (
                ONE.replace("kind = \"paid\"", "kind = \"trial\"\ntrial_days = 4294967295"),
                "tenants[0].sites[0].licences[0].trial_days: 4294967295 days after",
            ),
            (
                ONE.replace("tier = \"L\"", "tier = \"XL\"\nquantity = 4294967295")
                    + "[[tenants.sites.licences]]\ntier = \"XL\"\nquantity = 4294967295\nkind = \"paid\"\nstart = \"2025-01-01\"\n",
                "tenants[0].sites[0].licences[1].quantity: the site's XL licences together",
            ),
            (
                format!("{ONE}[tenants.enterprise_iot]\ne5_licences = 9223372036854775807\n"),
                "tenants[0].enterprise_iot.e5_licences: 9223372036854775807 licences x 5",
            ),
            (
                format!("{ONE}[tenants.enterprise_iot]\ne5_licences = 3000000000000000000\nstandalone_licences = 9000000000000000000\n"),
                "tenants[0].enterprise_iot.standalone_licences: ",
            ),
            (
                format!("{ONE}[tenants.enterprise_iot.trial]\nstart = \"2025-01-01\"\ndays = 4294967295\n"),
                "tenants[0].enterprise_iot.trial.days: 4294967295 days after",
            ),
            (
                ONE.replace("start = \"2025-01-01T00:00:00Z\"", "start = \"+99999-01-01\""),
                "tenants[0].sites[0].licences[0].start: ",
            ),
            (
                format!("[catalogue]\nXL = 9223372036854775807\n{ONE}"),
                "catalogue: XL: size 9223372036854775807 is above the largest supported count",
            ),
        ];
        for (doc, want) in cases {
            let got = load(&doc).unwrap_err().to_string();
            assert!(got.starts_with(want), "got {got:?}, want prefix {want:?}");
        }
        // A trial extension past the representable dates names the extension.
        let ext = ONE.replace("kind = \"paid\"", "kind = \"trial\"\ntrial_days = 30")
            + "[[tenants.sites.licences.extensions]]\nrequested_at = \"2025-01-25\"\ndays = 4294967295\n";
        let got = load(&ext).unwrap_err().to_string();
        assert!(
            got.starts_with("tenants[0].sites[0].licences[0].extensions[0].days: "),
            "{got}"
        );
    }

    #[test]
    fn errors_of_a_file_name_the_file_and_the_field() {
        use crate::licence::LicenceBook;
        use crate::settings::Settings;
        let e = LicenceBook::parse(
            "l.toml",
            &ONE.replace("tier = \"L\"", "tier = \"XXL\""),
            &Settings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("l.toml: tenants[0].sites[0].licences[0].tier: "),
            "{e}"
        );
        let e = LicenceBook::parse(
            "l.json",
            r#"{"tenants":[{"id":"a","enterprise_iot":{"e5_licences":-1}}]}"#,
            &Settings::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("l.json: tenants[0].enterprise_iot.e5_licences: "),
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
