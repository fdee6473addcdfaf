//! Encoding: turns a report (see [`crate::report`]) into the bytes sitetally receives,
//! Avro in the schema-registry wire format (bundled schema ids 1 and 2) or JSON in a few
//! sensor dialects (epoch milliseconds or RFC 3339 times, upper- or lower-case
//! categories).

use crate::report::Report;
use serde::Serialize;
use sitetally_core::{DeviceCategory, Discovery};
use std::borrow::Cow;

/// Bundled schema id of version 1 of the event schema.
pub const SCHEMA_V1: u32 = 1;
/// Bundled schema id of version 2 (adds `firmware` and `protocols`).
pub const SCHEMA_V2: u32 = 2;

/// Version 2 of the Avro record: version 1's fields, then `firmware` and `protocols`.
#[derive(Serialize)]
struct AvroV2<'a> {
    tenant: &'a str,
    site: &'a str,
    sensor: &'a str,
    observed_at: i64,
    zone: Option<&'a str>,
    device_id: Option<&'a str>,
    macs: &'a [String],
    ips: &'a [String],
    category: DeviceCategory,
    agent_managed: bool,
    vendor: Option<&'a str>,
    model: Option<&'a str>,
    hostname: Option<&'a str>,
    firmware: Option<&'a str>,
    protocols: &'a [&'a str],
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonTime {
    Millis(i64),
    Text(String),
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    site: &'a str,
    sensor: &'a str,
    observed_at: JsonTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    macs: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ips: &'a [String],
    category: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    agent_managed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    vendor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
}

/// Encodings a report can be sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    AvroV1,
    AvroV2,
    Json,
}

/// Encodes reports; holds the bundled Avro schemas, parsed once per stream.
pub(crate) struct Encoder {
    v1: serde_avro_fast::Schema,
    v2: serde_avro_fast::Schema,
}

impl Encoder {
    /// An encoder for the bundled schemas ([`SCHEMA_V1`] and [`SCHEMA_V2`]).
    pub(crate) fn bundled() -> Encoder {
        let schema = |id: u32| -> serde_avro_fast::Schema {
            let (_, json) = sitetally_core::codec::BUNDLED_SCHEMAS
                .iter()
                .find(|(i, _)| *i == id)
                .expect("bundled schema ids 1 and 2 exist");
            json.parse().expect("bundled schemas parse")
        };
        Encoder {
            v1: schema(SCHEMA_V1),
            v2: schema(SCHEMA_V2),
        }
    }

    /// `r` in encoding `enc`; `json_style` picks the JSON dialect (see [`encode_json`]).
    pub(crate) fn encode(&self, r: &Report<'_>, enc: Encoding, json_style: u8) -> Vec<u8> {
        let (id, body) = match enc {
            Encoding::Json => return encode_json(r, json_style, false),
            Encoding::AvroV1 => {
                let event = Discovery {
                    tenant: Cow::Borrowed(r.tenant),
                    site: Cow::Borrowed(r.site),
                    sensor: Cow::Borrowed(r.sensor),
                    observed_at: r.observed_at,
                    zone: r.zone.map(Cow::Borrowed),
                    device_id: r.device_id.as_deref().map(Cow::Borrowed),
                    macs: r.macs.iter().map(|m| Cow::Borrowed(m.as_str())).collect(),
                    ips: r.ips.iter().map(|m| Cow::Borrowed(m.as_str())).collect(),
                    category: r.category,
                    agent_managed: r.agent_managed,
                    vendor: r.vendor.map(Cow::Borrowed),
                    model: r.model.map(Cow::Borrowed),
                    hostname: r.hostname.map(Cow::Borrowed),
                };
                (SCHEMA_V1, avro_body(&event, &self.v1))
            }
            Encoding::AvroV2 => {
                let event = AvroV2 {
                    tenant: r.tenant,
                    site: r.site,
                    sensor: r.sensor,
                    observed_at: r.observed_at,
                    zone: r.zone,
                    device_id: r.device_id.as_deref(),
                    macs: &r.macs,
                    ips: &r.ips,
                    category: r.category,
                    agent_managed: r.agent_managed,
                    vendor: r.vendor,
                    model: r.model,
                    hostname: r.hostname,
                    firmware: r.firmware,
                    protocols: r.protocols,
                };
                (SCHEMA_V2, avro_body(&event, &self.v2))
            }
        };
        let mut out = Vec::with_capacity(body.len() + 5);
        out.push(0);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }
}

fn avro_body<T: Serialize>(value: &T, schema: &serde_avro_fast::Schema) -> Vec<u8> {
    let mut config = serde_avro_fast::ser::SerializerConfig::new(schema);
    // The records are built from the bundled schemas' own field lists; a failure here is
    // a bug in this crate, not bad input.
    serde_avro_fast::to_datum_vec(value, &mut config).expect("simulated event matches its schema")
}

/// JSON in a few sensor dialects: epoch ms or RFC 3339 (UTC or with an offset),
/// upper- or lower-case category.
pub(crate) fn encode_json(r: &Report<'_>, style: u8, omit_tenant: bool) -> Vec<u8> {
    let observed_at = match style {
        0..=5 => JsonTime::Millis(r.observed_at),
        6..=7 => JsonTime::Text(rfc3339(r.observed_at, 0)),
        _ => JsonTime::Text(rfc3339(r.observed_at, 120)),
    };
    let lower;
    let category = if style.is_multiple_of(3) {
        lower = r.category.as_str().to_ascii_lowercase();
        lower.as_str()
    } else {
        r.category.as_str()
    };
    let event = JsonEvent {
        tenant: (!omit_tenant).then_some(r.tenant),
        site: r.site,
        sensor: r.sensor,
        observed_at,
        zone: r.zone,
        device_id: r.device_id.as_deref(),
        macs: &r.macs,
        ips: &r.ips,
        category,
        agent_managed: r.agent_managed,
        vendor: r.vendor,
        model: r.model,
        hostname: r.hostname,
    };
    serde_json::to_vec(&event).expect("JSON serialization of plain data cannot fail")
}

fn rfc3339(ms: i64, offset_minutes: i32) -> String {
    use chrono::{FixedOffset, SecondsFormat, TimeZone};
    let tz = FixedOffset::east_opt(offset_minutes * 60)
        .unwrap_or(FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, offset_minutes == 0),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::report;
    use crate::testing::{config, stream};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use sitetally_core::codec::Codec;

    #[test]
    fn avro_v1_matches_the_core_encoder_byte_for_byte() {
        let s = stream(config(1));
        let world = s.world().clone();
        let encoder = Encoder::bundled();
        let mut rng = StdRng::seed_from_u64(1);
        let schema = sitetally_core::codec::bundled_avro_schema(SCHEMA_V1).unwrap();
        for idx in (0..world.devices.len()).step_by(97) {
            let r = report(&world, &mut rng, s.round_position(), idx);
            let ours = encoder.encode(&r, Encoding::AvroV1, 0);
            let event = Codec::bundled().decode(&ours).unwrap();
            let core = sitetally_core::codec::encode_avro(&event, SCHEMA_V1, &schema).unwrap();
            assert_eq!(ours, core);
        }
    }
}
