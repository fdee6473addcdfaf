//! The licence book: every tenant with its sites and coverage, the lookups the
//! decisions use, and loading a TOML or JSON document into it.

use super::raw::RawBook;
use super::{EnterpriseIot, LegacyOtPlan, OtLicence, Site};
use crate::settings::Settings;
use crate::tier::TierCatalogue;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// A customer tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tenant {
    pub id: String,
    /// Global catalogue with this tenant's overrides applied.
    pub catalogue: TierCatalogue,
    pub sites: Vec<Site>,
    pub enterprise_iot: Option<EnterpriseIot>,
    pub legacy_ot_plans: Vec<LegacyOtPlan>,
    /// When the Defender for IoT OT plan was cancelled in Azure: OT and Enterprise IoT
    /// services leave the subscription (one hour later), the M365 licences stay billed.
    pub ot_plan_cancelled_at: Option<DateTime<Utc>>,
    /// When only the Enterprise IoT plan was cancelled: Enterprise IoT only.
    pub eiot_plan_cancelled_at: Option<DateTime<Utc>>,
    /// Site id → position in `sites`, built on the first lookup (`sites` do not change
    /// after validation). A linear search per site made a 100,000-site tenant quadratic:
    /// 196 s to reconcile in a debug build.
    #[serde(skip)]
    pub(crate) site_index: std::sync::OnceLock<std::collections::HashMap<String, usize>>,
}

impl Tenant {
    pub fn site(&self, id: &str) -> Option<&Site> {
        let index = self.site_index.get_or_init(|| {
            self.sites
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect()
        });
        index.get(id).map(|&i| &self.sites[i])
    }

    /// Every OT site licence of the tenant.
    pub fn licences(&self) -> impl Iterator<Item = &OtLicence> {
        self.sites.iter().flat_map(|s| s.licences.iter())
    }

    /// Whether any OT site licence of the tenant is in effect at `now`.
    /// Whether the OT plan (and with it Enterprise IoT) is cancelled at `now`.
    pub fn ot_plan_gone(&self, now: DateTime<Utc>, delay: Duration) -> bool {
        self.ot_plan_cancelled_at
            .is_some_and(|c| now >= crate::time::plus(c, delay))
    }

    /// Whether Enterprise IoT is cancelled at `now` (its own plan, or the OT plan).
    pub fn eiot_plan_gone(&self, now: DateTime<Utc>, delay: Duration) -> bool {
        self.ot_plan_gone(now, delay)
            || self
                .eiot_plan_cancelled_at
                .is_some_and(|c| now >= crate::time::plus(c, delay))
    }

    pub fn has_active_licence(&self, now: DateTime<Utc>, delay: Duration) -> bool {
        self.licences().any(|l| l.is_effective(now, delay))
    }

    /// When the tenant's last OT licence stops being effective (the far future while one
    /// renews), if it has any.
    pub fn last_licence_end(&self, delay: Duration) -> Option<DateTime<Utc>> {
        self.licences().map(|l| l.effective_until(delay)).max()
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
    /// An error of licence file `file` (the field path is in `error`).
    #[error("{file}: {error}")]
    InFile {
        file: String,
        error: Box<LicenceError>,
    },
}

impl LicenceError {
    pub(super) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        LicenceError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A TOML error on one line: its position ("TOML parse error at line 3, column 7") and
/// what is wrong, without the multi-line source excerpt.
pub fn toml_error(e: &toml::de::Error) -> String {
    let first = e.to_string();
    let first = first.lines().next().unwrap_or("TOML parse error");
    format!("{first}: {}", e.message().trim_end())
}

impl LicenceBook {
    /// Parses the text of licence file `file`: JSON when its name ends in `.json`, TOML
    /// otherwise. Errors name `file` and the field path
    /// (`licences.toml: tenants[0].sites[1].id: ...`). Reading the file is the caller's:
    /// this crate does no I/O.
    pub fn parse(file: &str, text: &str, settings: &Settings) -> Result<Self, LicenceError> {
        let syntax = |message: String| LicenceError::Syntax {
            file: file.to_string(),
            message,
        };
        let raw: RawBook = if file.ends_with(".json") {
            // The field path of a wrong value, beside serde_json's line and column.
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." || path.is_empty() {
                    syntax(inner.to_string())
                } else {
                    syntax(format!("{path}: {inner}"))
                }
            })?
        } else {
            toml::from_str(text).map_err(|e| syntax(toml_error(&e)))?
        };
        raw.validate(settings).map_err(|e| LicenceError::InFile {
            file: file.to_string(),
            error: Box::new(e),
        })
    }

    pub fn from_toml_str(s: &str, settings: &Settings) -> Result<Self, LicenceError> {
        let raw: RawBook = toml::from_str(s).map_err(|e| LicenceError::Syntax {
            file: "<toml>".into(),
            message: toml_error(&e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::licence::test_support::{load, t, ONE};
    use crate::tier::Tier;

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
    fn shipped_example_file_loads() {
        let text = include_str!("../../../reconciler/examples/licences.toml");
        let b = LicenceBook::parse("licences.toml", text, &Settings::default()).unwrap();
        assert!(!b.tenants.is_empty());
    }
}
