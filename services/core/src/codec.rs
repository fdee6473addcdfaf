//! Wire decoding: Avro in the schema-registry wire format (magic byte 0, 4-byte big-endian
//! schema id, Avro binary body) and JSON (one object per message).
//!
//! Hot path: Avro bodies are decoded with `serde_avro_fast` straight into the borrowed
//! [`Discovery`] (no intermediate `Value`); see `benches/pipeline.rs` for the measurement
//! against `apache-avro`'s Value path that chose it. Schema evolution works by decoding
//! with the *writer's* schema (looked up by id) into the reader struct: fields the reader
//! does not know are skipped, fields the writer lacks take their serde defaults.

use crate::avro_plan::ReportPlan;
use crate::event::{Discovery, Report};
use serde::Deserialize;
use std::sync::Arc;

/// Schemas shipped with sitetally, by their bundled registry id.
pub const BUNDLED_SCHEMAS: &[(u32, &str)] = &[
    (1, include_str!("../../../schemas/device_discovery.avsc")),
    (2, include_str!("../../../schemas/device_discovery.v2.avsc")),
];

/// Longest payload accepted; larger messages are rejected before any decoding so a
/// hostile length prefix can never make us allocate.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Why a schema id could not be resolved. `Unavailable` is retryable (registry down),
/// `Unknown` is bad data (dead-letter it).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SchemaError {
    #[error("unknown schema id {0}")]
    Unknown(u32),
    #[error("schema registry unavailable: {0}")]
    Unavailable(String),
    #[error("schema {id} is not valid Avro: {reason}")]
    Invalid { id: u32, reason: String },
}

/// Resolves writer schemas by registry id.
pub trait SchemaResolver: Send + Sync {
    /// Returns the schema's JSON text.
    fn schema_json(&self, id: u32) -> Result<String, SchemaError>;
}

/// Resolver over the schemas bundled in the binary (`schemas/`).
#[derive(Debug, Default, Clone)]
pub struct BundledSchemas;

impl SchemaResolver for BundledSchemas {
    fn schema_json(&self, id: u32) -> Result<String, SchemaError> {
        BUNDLED_SCHEMAS
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| s.to_string())
            .ok_or(SchemaError::Unknown(id))
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("empty message")]
    Empty,
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("message is neither Avro wire format (magic byte 0) nor a JSON object (first byte 0x{0:02x})")]
    UnknownFormat(u8),
    #[error("Avro wire-format header needs 5 bytes, message has {0}")]
    TruncatedHeader(usize),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("Avro body does not match schema {id}: {reason}")]
    Avro { id: u32, reason: String },
    #[error("invalid JSON event: {0}")]
    Json(String),
}

impl DecodeError {
    /// Stable reason code for metrics and the dead-letter header.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::TooLarge(_) => "too_large",
            DecodeError::UnknownFormat(_) => "unknown_format",
            DecodeError::TruncatedHeader(_) => "truncated_header",
            DecodeError::Schema(SchemaError::Unknown(_)) => "unknown_schema",
            DecodeError::Schema(SchemaError::Invalid { .. }) => "invalid_schema",
            DecodeError::Schema(SchemaError::Unavailable(_)) => "registry_unavailable",
            DecodeError::Avro { .. } => "avro_decode",
            DecodeError::Json(_) => "json_decode",
        }
    }

    /// A registry outage is worth retrying; everything else is bad data.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeError::Schema(SchemaError::Unavailable(_)))
    }
}

/// A writer schema, parsed for `serde_avro_fast` and, when it can be, compiled into the
/// hot-path [`ReportPlan`].
struct WriterSchema {
    id: u32,
    serde: serde_avro_fast::Schema,
    plan: Option<ReportPlan>,
}

/// Decoder with a cache of parsed writer schemas in front of a [`SchemaResolver`].
pub struct Codec {
    resolver: Arc<dyn SchemaResolver>,
    /// A handful of ids in practice: a linear scan beats hashing.
    schemas: Vec<WriterSchema>,
}

impl Codec {
    pub fn new(resolver: Arc<dyn SchemaResolver>) -> Self {
        Self {
            resolver,
            schemas: Vec::new(),
        }
    }

    /// Codec over the bundled schemas.
    pub fn bundled() -> Self {
        Self::new(Arc::new(BundledSchemas))
    }

    fn schema(&mut self, id: u32) -> Result<&WriterSchema, SchemaError> {
        if let Some(i) = self.schemas.iter().position(|s| s.id == id) {
            return Ok(&self.schemas[i]);
        }
        let json = self.resolver.schema_json(id)?;
        let invalid = |reason: String| SchemaError::Invalid { id, reason };
        let serde: serde_avro_fast::Schema = json.parse().map_err(|e| invalid(format!("{e}")))?;
        let plan = apache_avro::Schema::parse_str(&json)
            .ok()
            .and_then(|s| ReportPlan::compile(&s));
        self.schemas.push(WriterSchema { id, serde, plan });
        Ok(self.schemas.last().expect("just pushed"))
    }

    /// Decodes one message, Avro or JSON, telling them apart by the first byte.
    pub fn decode<'a>(&mut self, payload: &'a [u8]) -> Result<Discovery<'a>, DecodeError> {
        self.decode_as(payload)
    }

    /// Decodes only what counting reads (the hot path): Avro through the writer schema's
    /// compiled [`ReportPlan`] when it has one, plain JSON objects through
    /// [`json_fast`](crate::json_fast); everything else, and whatever those refuse, through
    /// serde, which has the last word on what is rejected.
    pub fn decode_report<'a>(&mut self, payload: &'a [u8]) -> Result<Report<'a>, DecodeError> {
        if payload.len() <= MAX_MESSAGE_BYTES {
            match payload.first() {
                Some(0) if payload.len() >= 5 => {
                    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
                    let schema = self.schema(id)?;
                    // The plan only ever accepts: when it refuses, serde decides (and words
                    // the error), so both paths reject the same messages; the
                    // `decode_report` fuzz target checks it.
                    if let Some(Ok(report)) = schema.plan.as_ref().map(|p| p.decode(&payload[5..]))
                    {
                        return Ok(report);
                    }
                }
                Some(b'{' | b' ' | b'\t' | b'\r' | b'\n') => {
                    if let Some(report) = crate::json_fast::decode(payload) {
                        return Ok(report);
                    }
                }
                _ => {}
            }
        }
        self.decode_as(payload)
    }

    /// Decodes into any serde type shaped like the event (fields the type lacks are skipped).
    pub fn decode_as<'a, T: Deserialize<'a>>(
        &mut self,
        payload: &'a [u8],
    ) -> Result<T, DecodeError> {
        let first = *payload.first().ok_or(DecodeError::Empty)?;
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::TooLarge(payload.len()));
        }
        match first {
            0 => self.decode_avro(payload),
            b'{' | b' ' | b'\t' | b'\r' | b'\n' => decode_json(payload),
            other => Err(DecodeError::UnknownFormat(other)),
        }
    }

    fn decode_avro<'a, T: Deserialize<'a>>(&mut self, payload: &'a [u8]) -> Result<T, DecodeError> {
        if payload.len() < 5 {
            return Err(DecodeError::TruncatedHeader(payload.len()));
        }
        let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
        let schema = self.schema(id)?;
        serde_avro_fast::from_datum_slice(&payload[5..], &schema.serde).map_err(|e| {
            DecodeError::Avro {
                id,
                reason: e.to_string(),
            }
        })
    }
}

/// Decodes a JSON event with `sonic-rs` (SIMD; measured against `serde_json` in
/// `benches/pipeline.rs`, see load-tests/RESULTS.md).
pub fn decode_json<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, DecodeError> {
    sonic_rs::from_slice(payload).map_err(|e| DecodeError::Json(e.to_string()))
}

/// Encodes an event in the schema-registry wire format with `apache-avro` (producers:
/// the simulator, tests, benchmarks). `schema_json` must be the schema registered as `id`.
pub fn encode_avro(
    event: &Discovery<'_>,
    id: u32,
    schema: &apache_avro::Schema,
) -> Result<Vec<u8>, apache_avro::Error> {
    let value = apache_avro::to_value(event)?.resolve(schema)?;
    let body = apache_avro::to_avro_datum(schema, value)?;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The bundled schema `id` parsed by `apache-avro` (for encoders).
pub fn bundled_avro_schema(id: u32) -> Option<apache_avro::Schema> {
    let json = BundledSchemas.schema_json(id).ok()?;
    apache_avro::Schema::parse_str(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DeviceCategory;
    use std::borrow::Cow;

    /// Every input the fuzz targets found the fast and the reference decoder disagreeing
    /// on (fuzz/regressions/decode_report): they now agree.
    #[test]
    fn fuzz_regressions_decode_the_same_on_both_paths() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/decode_report");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let fast = Codec::bundled().decode_report(&bytes);
            let reference = Codec::bundled().decode_as::<Report<'_>>(&bytes);
            match (&fast, &reference) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                _ => panic!("fast {fast:?} vs reference {reference:?}"),
            }
            seen += 1;
        }
        assert!(seen >= 1);
    }

    fn sample() -> Discovery<'static> {
        Discovery {
            tenant: "acme".into(),
            site: "plant-1".into(),
            sensor: "s1".into(),
            observed_at: 1_795_424_400_000,
            zone: Some("cell-a".into()),
            device_id: Some("d-17".into()),
            macs: vec!["00:1a:2b:3c:4d:5e".into(), "00-1A-2B-3C-4D-5F".into()],
            ips: vec!["10.0.0.7".into()],
            category: DeviceCategory::Ot,
            agent_managed: false,
            vendor: Some("Siemens".into()),
            model: None,
            hostname: None,
        }
    }

    #[test]
    fn avro_round_trip_v1() {
        let schema = bundled_avro_schema(1).unwrap();
        let bytes = encode_avro(&sample(), 1, &schema).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1]);
        let decoded = Codec::bundled().decode(&bytes).unwrap();
        assert_eq!(decoded, sample());
        // Zero-copy: strings borrow from the payload.
        assert!(matches!(decoded.tenant, Cow::Borrowed(_)));
    }

    #[test]
    fn v2_writer_is_read_by_the_v1_consumer() {
        // A v2 producer adds fields; the same consumer struct must read it.
        let v2 = apache_avro::Schema::parse_str(BUNDLED_SCHEMAS[1].1).unwrap();
        let mut value = apache_avro::to_value(sample()).unwrap();
        if let apache_avro::types::Value::Record(fields) = &mut value {
            fields.push((
                "firmware".into(),
                apache_avro::types::Value::Union(
                    1,
                    Box::new(apache_avro::types::Value::String("4.2".into())),
                ),
            ));
            fields.push((
                "protocols".into(),
                apache_avro::types::Value::Array(vec![apache_avro::types::Value::String(
                    "S7".into(),
                )]),
            ));
        }
        let body = apache_avro::to_avro_datum(&v2, value.resolve(&v2).unwrap()).unwrap();
        let mut bytes = vec![0, 0, 0, 0, 2];
        bytes.extend_from_slice(&body);
        assert_eq!(Codec::bundled().decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn json_with_rfc3339_and_defaults() {
        let json = br#"{"tenant":"acme","site":"plant-1","sensor":"s1",
            "observed_at":"2026-11-23T09:00:00Z","macs":["001a.2b3c.4d5e"],"category":"iot"}"#;
        let d = Codec::bundled().decode(json).unwrap();
        assert_eq!(d.observed_at, 1_795_424_400_000);
        assert_eq!(d.category, DeviceCategory::Iot);
        assert!(d.ips.is_empty() && d.zone.is_none());
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let mut c = Codec::bundled();
        assert_eq!(c.decode(b"").unwrap_err().reason(), "empty");
        assert_eq!(
            c.decode(&[0, 0, 1]).unwrap_err().reason(),
            "truncated_header"
        );
        assert_eq!(
            c.decode(&[0, 0, 0, 0, 99, 1]).unwrap_err().reason(),
            "unknown_schema"
        );
        assert_eq!(
            c.decode(&[0, 0, 0, 0, 1, 0xff, 0xff, 0xff])
                .unwrap_err()
                .reason(),
            "avro_decode"
        );
        assert_eq!(
            c.decode(b"{\"tenant\": 3}").unwrap_err().reason(),
            "json_decode"
        );
        assert_eq!(c.decode(b"hello").unwrap_err().reason(), "unknown_format");
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A string length of ~2^62 after a valid header must fail cleanly.
        let mut bytes = vec![0, 0, 0, 0, 1];
        bytes.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(
            Codec::bundled().decode(&bytes).unwrap_err().reason(),
            "avro_decode"
        );
    }

    /// The counting view of an event must agree with the full event.
    fn assert_report_matches(r: &Report<'_>, d: &Discovery<'_>) {
        assert_eq!(
            (&r.tenant, &r.site, &r.sensor),
            (&d.tenant, &d.site, &d.sensor)
        );
        assert_eq!(
            (r.observed_at, r.category, r.agent_managed),
            (d.observed_at, d.category, d.agent_managed)
        );
        assert_eq!((&r.zone, &r.device_id), (&d.zone, &d.device_id));
        let macs: Vec<&str> = r.macs.iter().map(|m| &**m).collect();
        let ips: Vec<&str> = r.ips.iter().map(|m| &**m).collect();
        assert_eq!(macs, d.macs.iter().map(|m| m.as_ref()).collect::<Vec<_>>());
        assert_eq!(ips, d.ips.iter().map(|m| m.as_ref()).collect::<Vec<_>>());
    }

    #[test]
    fn report_borrows_identifiers_from_avro_and_plain_json() {
        let mut c = Codec::bundled();
        let avro = encode_avro(&sample(), 1, &bundled_avro_schema(1).unwrap()).unwrap();
        let json = serde_json::to_vec(&sample()).unwrap();
        for bytes in [&avro, &json] {
            let r = c.decode_report(bytes).unwrap();
            assert_report_matches(&r, &sample());
            assert!(
                r.macs
                    .iter()
                    .chain(&r.ips)
                    .all(|t| matches!(t.0, Cow::Borrowed(_))),
                "identifiers must not allocate"
            );
            assert!(!r.macs.spilled());
        }
    }

    #[test]
    fn report_unescapes_json_and_takes_long_lists() {
        let json = br#"{"tenant":"a\u0063me","site":"p","sensor":"s","observed_at":1795424400000,
            "macs":["00:1a:2b:3c:4d:5\u0065","m2","m3","m4","m5","m6"],"vendor":{"nested":[1,2]}}"#;
        let r = Codec::bundled().decode_report(json).unwrap();
        assert_eq!(r.tenant, "acme");
        assert_eq!(&*r.macs[0], "00:1a:2b:3c:4d:5e");
        assert!(matches!(r.macs[0].0, Cow::Owned(_)));
        assert_eq!(r.macs.len(), 6);
        assert!(r.macs.spilled());
    }

    #[test]
    fn report_and_discovery_agree_on_rejections() {
        let mut c = Codec::bundled();
        for bad in [&b"{\"tenant\": 3}"[..], b"{\"tenant\":\"t\"}", b"{\"tenant\":\"t\",\"site\":\"s\",\"sensor\":\"x\",\"observed_at\":\"noon\"}",
                    b"{\"tenant\":\"t\",\"site\":\"s\",\"sensor\":\"x\",\"observed_at\":1,\"macs\":\"one\"}", b"{]"] {
            assert_eq!(c.decode_report(bad).unwrap_err().reason(), c.decode(bad).unwrap_err().reason(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
