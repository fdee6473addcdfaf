//! The device-discovery event and the sighting row it turns into.

use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// Device category as a sensor classifies it. The Avro enum and the JSON strings use the
/// upper-case names; JSON also accepts lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DeviceCategory {
    #[default]
    #[serde(rename = "UNKNOWN", alias = "unknown")]
    Unknown,
    #[serde(rename = "OT", alias = "ot")]
    Ot,
    #[serde(rename = "IOT", alias = "iot")]
    Iot,
    #[serde(rename = "NETWORK", alias = "network")]
    Network,
    #[serde(rename = "COMPUTERS_MOBILE", alias = "computers_mobile")]
    ComputersMobile,
}

impl DeviceCategory {
    pub const ALL: [DeviceCategory; 5] = [
        DeviceCategory::Unknown,
        DeviceCategory::Ot,
        DeviceCategory::Iot,
        DeviceCategory::Network,
        DeviceCategory::ComputersMobile,
    ];

    /// Wire/storage name, as in the Avro enum and the ClickHouse `Enum8`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceCategory::Unknown => "UNKNOWN",
            DeviceCategory::Ot => "OT",
            DeviceCategory::Iot => "IOT",
            DeviceCategory::Network => "NETWORK",
            DeviceCategory::ComputersMobile => "COMPUTERS_MOBILE",
        }
    }

    /// Numeric code used in ClickHouse's `Enum8` and the embedded store.
    pub fn code(self) -> i8 {
        match self {
            DeviceCategory::Unknown => 0,
            DeviceCategory::Ot => 1,
            DeviceCategory::Iot => 2,
            DeviceCategory::Network => 3,
            DeviceCategory::ComputersMobile => 4,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    /// Enterprise IoT never bills the Computers & Mobile category (DESIGN §3).
    pub fn billable_for_enterprise_iot(self) -> bool {
        self != DeviceCategory::ComputersMobile
    }
}

impl std::fmt::Display for DeviceCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decoded discovery event. Strings borrow from the message payload where the
/// encoding allows it (Avro always, JSON unless escaped), so decoding allocates only
/// the identifier vectors.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Discovery<'a> {
    #[serde(borrow)]
    pub tenant: Cow<'a, str>,
    #[serde(borrow)]
    pub site: Cow<'a, str>,
    #[serde(borrow)]
    pub sensor: Cow<'a, str>,
    /// Epoch milliseconds UTC. JSON may also give an RFC 3339 string.
    #[serde(deserialize_with = "epoch_ms")]
    pub observed_at: i64,
    #[serde(borrow, default)]
    pub zone: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub macs: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub ips: Vec<Cow<'a, str>>,
    #[serde(default)]
    pub category: DeviceCategory,
    #[serde(default)]
    pub agent_managed: bool,
    #[serde(borrow, default)]
    pub vendor: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub hostname: Option<Cow<'a, str>>,
}

/// What counting reads from a discovery event: [`Discovery`] without the descriptive
/// fields (vendor, model, hostname), which decoders skip. Identifier lists hold up to four
/// entries inline and every string borrows from the payload unless JSON escaped it, so
/// decoding a typical event allocates nothing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Report<'a> {
    #[serde(borrow)]
    pub tenant: Cow<'a, str>,
    #[serde(borrow)]
    pub site: Cow<'a, str>,
    #[serde(borrow)]
    pub sensor: Cow<'a, str>,
    #[serde(deserialize_with = "epoch_ms")]
    pub observed_at: i64,
    #[serde(borrow, default)]
    pub zone: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub device_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub macs: Identifiers<'a>,
    #[serde(borrow, default)]
    pub ips: Identifiers<'a>,
    #[serde(default)]
    pub category: DeviceCategory,
    #[serde(default)]
    pub agent_managed: bool,
}

impl Report<'_> {
    /// Empty fields, for decoders that fill a report in place.
    pub(crate) fn blank() -> Self {
        Report {
            tenant: Cow::Borrowed(""),
            site: Cow::Borrowed(""),
            sensor: Cow::Borrowed(""),
            observed_at: 0,
            zone: None,
            device_id: None,
            macs: Identifiers::new(),
            ips: Identifiers::new(),
            category: DeviceCategory::default(),
            agent_managed: false,
        }
    }
}

/// A list of MAC or IP spellings, inline up to four.
pub type Identifiers<'a> = smallvec::SmallVec<[Text<'a>; 4]>;

/// A string that borrows from the payload when it can. (serde only borrows a `Cow` that is
/// a struct field itself; inside a list it would always allocate.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V).map(Text)
    }
}

fn epoch_ms<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("epoch milliseconds or an RFC 3339 timestamp")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("timestamp out of range"))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            parse_rfc3339_ms(v).ok_or_else(|| E::custom(format!("bad timestamp {v:?}")))
        }
    }
    d.deserialize_any(V)
}

/// Minimal RFC 3339 parser (`2026-11-23T10:00:00Z`, optional fraction and offset):
/// enough for sensors' JSON without pulling a date crate into the hot path.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        // Milliseconds from the first three fraction digits, without allocating.
        ms = b[start..i]
            .iter()
            .chain(b"000")
            .take(3)
            .fold(0, |acc, d| acc * 10 + i64::from(d - b'0'));
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        b'+' | b'-' if b.len() == i + 6 => {
            let sign = if b[i] == b'-' { -1 } else { 1 };
            sign * (num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?)
        }
        _ => return None,
    };
    // Days from civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi - offset_min) * 60_000 + se * 1000 + ms)
}

/// One row of the `sightings` table: a device seen at a site on a day. Ingest writes each
/// (tenant, site, day, device) about once; storage deduplicates the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub tenant: String,
    pub site: String,
    /// Days since 1970-01-01 UTC.
    pub day: u16,
    /// Stable device key (see [`crate::identity`]).
    pub device_key: u64,
    /// Human-readable identity the key was derived from (`mac:…`, `ip:zone/…`, `sensor:…`).
    pub device_label: String,
    pub category: DeviceCategory,
    pub agent_managed: bool,
    pub sensor: String,
    /// First observation of this device on this day that ingest wrote, epoch ms.
    pub seen_at_ms: i64,
}

/// Arbitrary events for the decoders' property tests, with strings drawn from `text`
/// (a proptest regex).
#[cfg(test)]
pub(crate) fn arb_discovery(
    text: &'static str,
) -> impl proptest::strategy::Strategy<Value = Discovery<'static>> {
    use proptest::prelude::*;
    let s = move || text;
    (
        (
            s(),
            s(),
            s(),
            any::<i64>(),
            proptest::option::of(s()),
            proptest::option::of(s()),
        ),
        (
            proptest::collection::vec(s(), 0..7),
            proptest::collection::vec(s(), 0..7),
            0..5usize,
            any::<bool>(),
        ),
        (
            proptest::option::of(s()),
            proptest::option::of(s()),
            proptest::option::of(s()),
        ),
    )
        .prop_map(
            |(
                (tenant, site, sensor, at, zone, device_id),
                (macs, ips, cat, agent),
                (vendor, model, hostname),
            )| Discovery {
                tenant: tenant.into(),
                site: site.into(),
                sensor: sensor.into(),
                observed_at: at,
                zone: zone.map(Into::into),
                device_id: device_id.map(Into::into),
                macs: macs.into_iter().map(Into::into).collect(),
                ips: ips.into_iter().map(Into::into).collect(),
                category: DeviceCategory::ALL[cat],
                agent_managed: agent,
                vendor: vendor.map(Into::into),
                model: model.map(Into::into),
                hostname: hostname.map(Into::into),
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_utc_offsets_and_fractions() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339_ms("1970-01-02T00:00:00.5Z"), Some(86_400_500));
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T10:00:00+01:00"),
            parse_rfc3339_ms("2026-11-23T09:00:00Z")
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-23T09:00:00Z"),
            Some(1_795_424_400_000)
        );
        assert_eq!(parse_rfc3339_ms("2026-13-23T09:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.123456Z"), Some(1123));
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.07Z"), Some(1070));
        assert_eq!(
            parse_rfc3339_ms("1970-01-01T00:00:01.Z"),
            None,
            "a fraction needs a digit"
        );
    }

    #[test]
    fn category_codes_round_trip() {
        for c in DeviceCategory::ALL {
            assert_eq!(DeviceCategory::from_code(c.code()), Some(c));
            assert_eq!(DeviceCategory::parse(&c.as_str().to_lowercase()), Some(c));
        }
        assert!(!DeviceCategory::ComputersMobile.billable_for_enterprise_iot());
        assert!(DeviceCategory::Iot.billable_for_enterprise_iot());
    }
}
