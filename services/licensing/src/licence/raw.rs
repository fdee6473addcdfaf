//! The licence document as written: tiers, kinds and times stay text, so that
//! validation can name the exact field that is wrong.

use crate::tier::CatalogueOverride;
use serde::Deserialize;

/// A time given as an RFC 3339 string, a `YYYY-MM-DD` date (midnight UTC), or a TOML
/// datetime.
#[derive(Debug, Clone)]
pub(super) struct RawTime(pub(super) String);

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBook {
    #[serde(default)]
    pub(super) catalogue: Option<CatalogueOverride>,
    #[serde(default)]
    pub(super) tenants: Vec<RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenant {
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) catalogue: Option<CatalogueOverride>,
    #[serde(default)]
    pub(super) sites: Vec<RawSite>,
    #[serde(default)]
    pub(super) enterprise_iot: Option<RawEiot>,
    #[serde(default)]
    pub(super) legacy_ot_plans: Vec<RawLegacyOt>,
    pub(super) ot_plan_cancelled_at: Option<RawTime>,
    pub(super) eiot_plan_cancelled_at: Option<RawTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) licences: Vec<RawLicence>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLicence {
    pub(super) id: Option<String>,
    pub(super) tier: Option<String>,
    pub(super) quantity: Option<u32>,
    pub(super) kind: Option<String>,
    pub(super) start: Option<RawTime>,
    pub(super) end: Option<RawTime>,
    pub(super) confirmed_at: Option<RawTime>,
    pub(super) cancelled_at: Option<RawTime>,
    pub(super) recurring_billing: Option<bool>,
    pub(super) trial_days: Option<u32>,
    #[serde(default)]
    pub(super) extensions: Vec<RawExtension>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExtension {
    pub(super) requested_at: Option<RawTime>,
    pub(super) days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommitment {
    pub(super) devices: Option<u64>,
    pub(super) confirmed_at: Option<RawTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLegacyOt {
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) sites: Vec<String>,
    #[serde(default)]
    pub(super) commitments: Vec<RawCommitment>,
    pub(super) term: Option<String>,
    pub(super) committed_sites: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEiot {
    #[serde(default)]
    pub(super) e5_licences: u64,
    #[serde(default)]
    pub(super) standalone_licences: u64,
    pub(super) trial: Option<RawEiotTrial>,
    #[serde(default)]
    pub(super) legacy_commitments: Vec<RawCommitment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEiotTrial {
    pub(super) start: Option<RawTime>,
    pub(super) days: Option<u32>,
    pub(super) device_limit: Option<u64>,
}
