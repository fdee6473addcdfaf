//! The licence model: tenants, sites, OT site licences, Enterprise IoT coverage and
//! legacy committed-device plans, and loading them from a TOML or JSON file with errors
//! that name the offending field (`tenants[0].sites[2].licences[0].tier: ...`).
//!
//! Time rules kept here (DESIGN §3): a licence or plan change takes effect one hour after
//! confirmation; paid licences last one year; trial length is a licence field and a trial
//! can be extended in its final 15 days; a paid licence cancelled within 7 days of its
//! start is refunded pro rata.

use crate::settings::Settings;
use crate::tier::{CatalogueOverride, Tier, TierCatalogue};
use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Trial, paid, or paid-then-cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenceKind {
    Trial,
    Paid,
    Cancelled,
}

/// A trial extension, requested by the customer in the trial's final days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrialExtension {
    pub requested_at: DateTime<Utc>,
    pub days: u32,
}

/// One OT site licence (or `quantity` stacked XL licences).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtLicence {
    /// Free-form reference (order number), for output only.
    pub id: Option<String>,
    pub tier: Tier,
    /// Number of licences; above 1 only for XL.
    pub quantity: u32,
    pub kind: LicenceKind,
    pub start: DateTime<Utc>,
    /// End of the licence term before trial extensions (paid: start + 1 year by default;
    /// trial: start + trial_days).
    pub end: DateTime<Utc>,
    /// When the purchase or plan change was confirmed; effective one hour later.
    pub confirmed_at: DateTime<Utc>,
    /// When a cancellation was confirmed (kind = cancelled); effective one hour later.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Trial length in days (trials only).
    pub trial_days: Option<u32>,
    pub extensions: Vec<TrialExtension>,
}

impl OtLicence {
    /// First instant the licence counts: its start, but never before one hour (the
    /// configured delay) after confirmation.
    pub fn effective_from(&self, delay: Duration) -> DateTime<Utc> {
        self.start.max(self.confirmed_at + delay)
    }

    /// End of the term including trial extensions.
    pub fn term_end(&self) -> DateTime<Utc> {
        let extra: i64 = self.extensions.iter().map(|e| i64::from(e.days)).sum();
        self.end + Duration::days(extra)
    }

    /// First instant the licence no longer counts: the term end, or one hour after a
    /// cancellation was confirmed, whichever comes first.
    pub fn effective_until(&self, delay: Duration) -> DateTime<Utc> {
        match self.cancelled_at {
            Some(c) => self.term_end().min(c + delay),
            None => self.term_end(),
        }
    }

    /// Whether the licence covers the site at `now`.
    pub fn is_effective(&self, now: DateTime<Utc>, delay: Duration) -> bool {
        self.effective_from(delay) <= now && now < self.effective_until(delay)
    }

    pub fn is_trial(&self) -> bool {
        self.kind == LicenceKind::Trial
    }

    /// A trial can be extended in its final `ending_days` days.
    pub fn can_extend(&self, now: DateTime<Utc>, ending_days: u32) -> bool {
        let end = self.term_end();
        self.is_trial() && now < end && now >= end - Duration::days(i64::from(ending_days))
    }

    /// A paid licence cancelled within seven days of its start gets a prorated refund.
    pub fn refund_eligible(&self) -> bool {
        match (self.kind, self.cancelled_at) {
            (LicenceKind::Cancelled, Some(c)) => c - self.start <= Duration::days(7),
            _ => false,
        }
    }
}

/// A site: one physical location with its OT licences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub id: String,
    pub licences: Vec<OtLicence>,
}

/// A committed-device number and when it was confirmed (effective one hour later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Commitment {
    pub devices: u64,
    pub confirmed_at: DateTime<Utc>,
}

/// The commitment in force at `now`: the latest confirmed at least `delay` ago.
pub fn commitment_at(
    commitments: &[Commitment],
    now: DateTime<Utc>,
    delay: Duration,
) -> Option<Commitment> {
    commitments
        .iter()
        .filter(|c| c.confirmed_at + delay <= now)
        .max_by_key(|c| c.confirmed_at)
        .copied()
}

/// A legacy OT plan billed by committed devices over some (or all) of a tenant's sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacyOtPlan {
    pub id: String,
    /// Sites the plan covers; empty = every site of the tenant.
    pub sites: Vec<String>,
    pub commitments: Vec<Commitment>,
}

impl LegacyOtPlan {
    pub fn covers(&self, site: &str) -> bool {
        self.sites.is_empty() || self.sites.iter().any(|s| s == site)
    }
}

/// An Enterprise IoT trial: 30 days unlimited or 90 days for 100 devices, per the
/// documents, so both are fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EiotTrial {
    pub start: DateTime<Utc>,
    pub days: u32,
    /// None = unlimited devices.
    pub device_limit: Option<u64>,
}

impl EiotTrial {
    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::days(i64::from(self.days))
    }
}

/// A tenant's Enterprise IoT coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct EnterpriseIot {
    /// Microsoft 365 E5 / E5 Security licences (5 devices each by default).
    pub e5_licences: u64,
    /// Standalone per-device licences.
    pub standalone_licences: u64,
    pub trial: Option<EiotTrial>,
    /// Legacy plan billed by committed devices (network + IoT, rounded up to 100).
    pub legacy_commitments: Vec<Commitment>,
}

/// A customer tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: String,
    /// Global catalogue with this tenant's overrides applied.
    pub catalogue: TierCatalogue,
    pub sites: Vec<Site>,
    pub enterprise_iot: Option<EnterpriseIot>,
    pub legacy_ot_plans: Vec<LegacyOtPlan>,
}

impl Tenant {
    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// Every OT site licence of the tenant.
    pub fn licences(&self) -> impl Iterator<Item = &OtLicence> {
        self.sites.iter().flat_map(|s| s.licences.iter())
    }

    /// Whether any OT site licence of the tenant is in effect at `now`.
    pub fn has_active_licence(&self, now: DateTime<Utc>, delay: Duration) -> bool {
        self.licences().any(|l| l.is_effective(now, delay))
    }

    /// When the tenant's last OT licence stopped being effective, if all have and there
    /// was at least one. Starts the 30-day grace period.
    pub fn last_expiry(&self, now: DateTime<Utc>, delay: Duration) -> Option<DateTime<Utc>> {
        if self.has_active_licence(now, delay) {
            return None;
        }
        self.licences()
            .map(|l| l.effective_until(delay))
            .filter(|&u| u <= now)
            .max()
    }
}

/// Every tenant's licences, loaded and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LicenceBook {
    pub tenants: Vec<Tenant>,
}

/// Why a licence file was rejected. `path` names the field (`tenants[0].sites[1].id`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LicenceError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl LicenceError {
    fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        LicenceError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl LicenceBook {
    /// Parses the text of licence file `file`: JSON when its name ends in `.json`, TOML
    /// otherwise. Errors name `file`. Reading the file is the caller's: this crate does no
    /// I/O.
    pub fn parse(file: &str, text: &str, settings: &Settings) -> Result<Self, LicenceError> {
        let syntax = |message: String| LicenceError::Syntax {
            file: file.to_string(),
            message,
        };
        let raw: RawBook = if file.ends_with(".json") {
            serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| syntax(e.to_string()))?
        };
        raw.validate(settings)
    }

    pub fn from_toml_str(s: &str, settings: &Settings) -> Result<Self, LicenceError> {
        let raw: RawBook = toml::from_str(s).map_err(|e| LicenceError::Syntax {
            file: "<toml>".into(),
            message: e.to_string(),
        })?;
        raw.validate(settings)
    }

    pub fn from_json_str(s: &str, settings: &Settings) -> Result<Self, LicenceError> {
        let raw: RawBook = serde_json::from_str(s).map_err(|e| LicenceError::Syntax {
            file: "<json>".into(),
            message: e.to_string(),
        })?;
        raw.validate(settings)
    }

    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }
}

// ---------------------------------------------------------------------------------
// File format. Raw structs keep tiers, kinds and times as text so that validation can
// name the exact field that is wrong.

/// A time given as an RFC 3339 string, a `YYYY-MM-DD` date (midnight UTC), or a TOML
/// datetime.
#[derive(Debug, Clone)]
struct RawTime(String);

impl<'de> Deserialize<'de> for RawTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTime;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time or a YYYY-MM-DD date")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTime, E> {
                Ok(RawTime(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawTime, A::Error> {
                // toml represents native datetimes as a one-entry map.
                let mut out = None;
                while let Some((_k, v)) = map.next_entry::<String, String>()? {
                    out = Some(v);
                }
                out.map(RawTime)
                    .ok_or_else(|| serde::de::Error::custom("empty datetime"))
            }
        }
        d.deserialize_any(V)
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBook {
    #[serde(default)]
    catalogue: Option<CatalogueOverride>,
    #[serde(default)]
    tenants: Vec<RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: Option<String>,
    #[serde(default)]
    catalogue: Option<CatalogueOverride>,
    #[serde(default)]
    sites: Vec<RawSite>,
    #[serde(default)]
    enterprise_iot: Option<RawEiot>,
    #[serde(default)]
    legacy_ot_plans: Vec<RawLegacyOt>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    id: Option<String>,
    #[serde(default)]
    licences: Vec<RawLicence>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLicence {
    id: Option<String>,
    tier: Option<String>,
    quantity: Option<u32>,
    kind: Option<String>,
    start: Option<RawTime>,
    end: Option<RawTime>,
    confirmed_at: Option<RawTime>,
    cancelled_at: Option<RawTime>,
    trial_days: Option<u32>,
    #[serde(default)]
    extensions: Vec<RawExtension>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtension {
    requested_at: Option<RawTime>,
    days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommitment {
    devices: Option<u64>,
    confirmed_at: Option<RawTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLegacyOt {
    id: Option<String>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    commitments: Vec<RawCommitment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEiot {
    #[serde(default)]
    e5_licences: u64,
    #[serde(default)]
    standalone_licences: u64,
    trial: Option<RawEiotTrial>,
    #[serde(default)]
    legacy_commitments: Vec<RawCommitment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEiotTrial {
    start: Option<RawTime>,
    days: Option<u32>,
    device_limit: Option<u64>,
}

fn commitments(raw: &[RawCommitment], path: &str) -> Result<Vec<Commitment>, LicenceError> {
    raw.iter()
        .enumerate()
        .map(|(i, c)| {
            let p = format!("{path}[{i}]");
            Ok(Commitment {
                devices: *req(&c.devices, &format!("{p}.devices"))?,
                confirmed_at: parse_time(
                    &format!("{p}.confirmed_at"),
                    req(&c.confirmed_at, &format!("{p}.confirmed_at"))?,
                )?,
            })
        })
        .collect()
}

fn non_empty_id(id: &Option<String>, path: &str) -> Result<String, LicenceError> {
    let id = req(id, path)?;
    if id.trim().is_empty() {
        return Err(LicenceError::invalid(path, "must not be empty"));
    }
    Ok(id.clone())
}

impl RawBook {
    fn validate(self, settings: &Settings) -> Result<LicenceBook, LicenceError> {
        let delay = settings.effective_delay();
        let base = match &self.catalogue {
            Some(o) => TierCatalogue::default()
                .with_override(o)
                .map_err(|e| LicenceError::invalid("catalogue", e.to_string()))?,
            None => TierCatalogue::default(),
        };
        let mut tenants: Vec<Tenant> = Vec::with_capacity(self.tenants.len());
        for (ti, rt) in self.tenants.iter().enumerate() {
            let tp = format!("tenants[{ti}]");
            let id = non_empty_id(&rt.id, &format!("{tp}.id"))?;
            if tenants.iter().any(|t| t.id == id) {
                return Err(LicenceError::invalid(
                    format!("{tp}.id"),
                    format!("duplicate tenant {id:?}"),
                ));
            }
            let catalogue = match &rt.catalogue {
                Some(o) => base
                    .with_override(o)
                    .map_err(|e| LicenceError::invalid(format!("{tp}.catalogue"), e.to_string()))?,
                None => base.clone(),
            };
            let mut sites: Vec<Site> = Vec::new();
            for (si, rs) in rt.sites.iter().enumerate() {
                let sp = format!("{tp}.sites[{si}]");
                let sid = non_empty_id(&rs.id, &format!("{sp}.id"))?;
                if sites.iter().any(|s| s.id == sid) {
                    return Err(LicenceError::invalid(
                        format!("{sp}.id"),
                        format!("duplicate site {sid:?} in tenant {id:?}"),
                    ));
                }
                let licences = rs
                    .licences
                    .iter()
                    .enumerate()
                    .map(|(li, rl)| {
                        validate_licence(rl, &format!("{sp}.licences[{li}]"), &catalogue, settings)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                check_single_non_xl(&licences, &sp, delay)?;
                sites.push(Site { id: sid, licences });
            }
            let enterprise_iot = match &rt.enterprise_iot {
                None => None,
                Some(re) => {
                    let ep = format!("{tp}.enterprise_iot");
                    let trial = match &re.trial {
                        None => None,
                        Some(t) => {
                            let p = format!("{ep}.trial");
                            let days = *req(&t.days, &format!("{p}.days"))?;
                            if days == 0 {
                                return Err(LicenceError::invalid(
                                    format!("{p}.days"),
                                    "must be at least 1",
                                ));
                            }
                            Some(EiotTrial {
                                start: parse_time(
                                    &format!("{p}.start"),
                                    req(&t.start, &format!("{p}.start"))?,
                                )?,
                                days,
                                device_limit: t.device_limit,
                            })
                        }
                    };
                    Some(EnterpriseIot {
                        e5_licences: re.e5_licences,
                        standalone_licences: re.standalone_licences,
                        trial,
                        legacy_commitments: commitments(
                            &re.legacy_commitments,
                            &format!("{ep}.legacy_commitments"),
                        )?,
                    })
                }
            };
            let mut legacy_ot_plans = Vec::new();
            for (pi, rp) in rt.legacy_ot_plans.iter().enumerate() {
                let pp = format!("{tp}.legacy_ot_plans[{pi}]");
                let pid = non_empty_id(&rp.id, &format!("{pp}.id"))?;
                if rp.commitments.is_empty() {
                    return Err(LicenceError::invalid(
                        format!("{pp}.commitments"),
                        "at least one commitment is required",
                    ));
                }
                legacy_ot_plans.push(LegacyOtPlan {
                    id: pid,
                    sites: rp.sites.clone(),
                    commitments: commitments(&rp.commitments, &format!("{pp}.commitments"))?,
                });
            }
            tenants.push(Tenant {
                id,
                catalogue,
                sites,
                enterprise_iot,
                legacy_ot_plans,
            });
        }
        Ok(LicenceBook { tenants })
    }
}

fn validate_licence(
    rl: &RawLicence,
    lp: &str,
    catalogue: &TierCatalogue,
    settings: &Settings,
) -> Result<OtLicence, LicenceError> {
    let kind_s = req(&rl.kind, &format!("{lp}.kind"))?;
    let kind = match kind_s.trim().to_ascii_lowercase().as_str() {
        "trial" => LicenceKind::Trial,
        "paid" => LicenceKind::Paid,
        "cancelled" | "canceled" => LicenceKind::Cancelled,
        other => {
            return Err(LicenceError::invalid(
                format!("{lp}.kind"),
                format!("unknown kind {other:?} (known: trial, paid, cancelled)"),
            ))
        }
    };
    // A trial covers a Large site unless the file says otherwise.
    let tier = match (&rl.tier, kind) {
        (None, LicenceKind::Trial) => Tier::L,
        (t, _) => {
            let t = req(t, &format!("{lp}.tier"))?;
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
            tier
        }
    };
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
    let start = parse_time(
        &format!("{lp}.start"),
        req(&rl.start, &format!("{lp}.start"))?,
    )?;
    let delay = settings.effective_delay();
    let confirmed_at = match &rl.confirmed_at {
        Some(t) => parse_time(&format!("{lp}.confirmed_at"), t)?,
        None => start - delay,
    };
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
    let cancelled_at = match (&rl.cancelled_at, kind) {
        (Some(t), LicenceKind::Cancelled) => Some(parse_time(&format!("{lp}.cancelled_at"), t)?),
        (None, LicenceKind::Cancelled) => {
            return Err(LicenceError::invalid(
                format!("{lp}.cancelled_at"),
                "missing required field for a cancelled licence",
            ))
        }
        (Some(_), _) => {
            return Err(LicenceError::invalid(
                format!("{lp}.cancelled_at"),
                "only cancelled licences have a cancellation time (set kind = \"cancelled\")",
            ))
        }
        (None, _) => None,
    };
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
        let ep = format!("{lp}.extensions[{ei}]");
        if kind != LicenceKind::Trial {
            return Err(LicenceError::invalid(ep, "only trials can be extended"));
        }
        let requested_at = parse_time(
            &format!("{ep}.requested_at"),
            req(&re.requested_at, &format!("{ep}.requested_at"))?,
        )?;
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
        lic.extensions.push(TrialExtension { requested_at, days });
    }
    Ok(lic)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn load(s: &str) -> Result<LicenceBook, LicenceError> {
        LicenceBook::from_toml_str(s, &Settings::default())
    }

    const ONE: &str = r#"
[[tenants]]
id = "acme"
[[tenants.sites]]
id = "plant-1"
[[tenants.sites.licences]]
tier = "L"
kind = "paid"
start = "2025-01-01T00:00:00Z"
"#;

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
    fn json_and_toml_native_datetimes_load() {
        let json = r#"{"tenants":[{"id":"acme","sites":[{"id":"p","licences":[
            {"tier":"M","kind":"paid","start":"2025-01-01T00:00:00Z"}]}]}]}"#;
        let b = LicenceBook::from_json_str(json, &Settings::default()).unwrap();
        assert_eq!(b.tenants[0].sites[0].licences[0].tier, Tier::M);
        let native = ONE.replace("\"2025-01-01T00:00:00Z\"", "2025-01-01T00:00:00Z");
        assert_eq!(
            load(&native).unwrap().tenants[0].sites[0].licences[0].start,
            t("2025-01-01T00:00:00Z")
        );
        let e = LicenceBook::from_json_str(
            r#"{"tenants":[{"id":"a","sites":[{"id":"p","licences":[{"tier":"XXL","kind":"paid","start":"2025-01-01"}]}]}]}"#,
            &Settings::default(),
        )
        .unwrap_err();
        assert!(e
            .to_string()
            .starts_with("tenants[0].sites[0].licences[0].tier"));
    }

    #[test]
    fn effective_one_hour_after_confirmation() {
        let doc = ONE.replace(
            "start = \"2025-01-01T00:00:00Z\"",
            "start = \"2025-01-01T00:00:00Z\"\nconfirmed_at = \"2025-03-01T10:00:00Z\"",
        );
        let b = load(&doc).unwrap();
        let l = &b.tenants[0].sites[0].licences[0];
        let h = Duration::hours(1);
        assert!(!l.is_effective(t("2025-03-01T10:59:59Z"), h));
        assert!(l.is_effective(t("2025-03-01T11:00:00Z"), h));
    }

    #[test]
    fn cancellation_effective_one_hour_after_confirmation_and_refund_window() {
        let doc = ONE.replace(
            "kind = \"paid\"",
            "kind = \"cancelled\"\ncancelled_at = \"2025-01-05T12:00:00Z\"",
        );
        let b = load(&doc).unwrap();
        let l = &b.tenants[0].sites[0].licences[0];
        let h = Duration::hours(1);
        assert!(l.is_effective(t("2025-01-05T12:59:59Z"), h));
        assert!(!l.is_effective(t("2025-01-05T13:00:00Z"), h));
        assert!(l.refund_eligible());
        let late = ONE.replace(
            "kind = \"paid\"",
            "kind = \"cancelled\"\ncancelled_at = \"2025-01-09T00:00:00Z\"",
        );
        assert!(!load(&late).unwrap().tenants[0].sites[0].licences[0].refund_eligible());
    }

    #[test]
    fn trial_length_is_a_field_and_extension_only_in_final_15_days() {
        let trial = |ext: &str| {
            format!(
                r#"
[[tenants]]
id = "acme"
[[tenants.sites]]
id = "p"
[[tenants.sites.licences]]
kind = "trial"
trial_days = 60
start = "2025-01-01T00:00:00Z"
{ext}
"#
            )
        };
        let b = load(&trial("")).unwrap();
        let l = &b.tenants[0].sites[0].licences[0];
        assert_eq!(l.tier, Tier::L);
        assert_eq!(l.term_end(), t("2025-03-02T00:00:00Z"));
        assert!(!l.can_extend(t("2025-02-14T23:59:59Z"), 15));
        assert!(l.can_extend(t("2025-02-15T00:00:00Z"), 15));
        assert!(!l.can_extend(t("2025-03-02T00:00:00Z"), 15));

        let ok = trial(
            "[[tenants.sites.licences.extensions]]\nrequested_at = \"2025-02-20T00:00:00Z\"\ndays = 30",
        );
        let b = load(&ok).unwrap();
        assert_eq!(
            b.tenants[0].sites[0].licences[0].term_end(),
            t("2025-04-01T00:00:00Z")
        );
        let early = trial(
            "[[tenants.sites.licences.extensions]]\nrequested_at = \"2025-01-20T00:00:00Z\"\ndays = 30",
        );
        let e = load(&early).unwrap_err().to_string();
        assert!(
            e.starts_with("tenants[0].sites[0].licences[0].extensions[0].requested_at: a trial can only be extended in its final 15 days"),
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

    #[test]
    fn legacy_commitment_in_force_one_hour_after_confirmation() {
        let cs = [
            Commitment {
                devices: 1000,
                confirmed_at: t("2025-01-01T00:00:00Z"),
            },
            Commitment {
                devices: 2000,
                confirmed_at: t("2025-06-01T08:00:00Z"),
            },
        ];
        let h = Duration::hours(1);
        assert_eq!(
            commitment_at(&cs, t("2025-06-01T08:59:00Z"), h)
                .unwrap()
                .devices,
            1000
        );
        assert_eq!(
            commitment_at(&cs, t("2025-06-01T09:00:00Z"), h)
                .unwrap()
                .devices,
            2000
        );
        assert!(commitment_at(&cs, t("2024-12-31T00:00:00Z"), h).is_none());
    }

    #[test]
    fn shipped_example_file_loads() {
        let text = include_str!("../../reconciler/examples/licences.toml");
        let b = LicenceBook::parse("licences.toml", text, &Settings::default()).unwrap();
        assert!(!b.tenants.is_empty());
    }
}
