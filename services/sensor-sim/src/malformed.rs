//! Malformed messages: the kinds of bad input the simulator sends, how each is built
//! from a valid report, and the rejection reason sitetally must give it.

use crate::encode::{encode_json, Encoder, Encoding};
use crate::report::Report;
use rand::rngs::StdRng;
use rand::Rng;
use sitetally_core::MS_PER_DAY;

/// Ways a simulated message is malformed. Each is rejected by sitetally and belongs in
/// the dead-letter topic; [`SimMessage::expected_reason`] gives the reason code.
///
/// [`SimMessage::expected_reason`]: crate::stream::SimMessage::expected_reason
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MalformedKind {
    /// A valid Avro message cut short inside its body (`avro_decode`).
    TruncatedAvro,
    /// A valid Avro body behind a schema id nobody registered (`unknown_schema`).
    UnknownSchemaId,
    /// Random bytes that are neither Avro wire format nor JSON (`unknown_format`).
    GarbageBytes,
    /// Broken JSON: cut short, a bad timestamp string, or trailing garbage
    /// (`json_decode`).
    InvalidJson,
    /// Tenant empty (`missing_field`) or, in JSON, absent (`json_decode`).
    MissingTenant,
    /// A MAC that is not a MAC (`invalid_mac`).
    BadMac,
    /// An IP that is not an IP, on a device without MACs (`invalid_ip`).
    InvalidIp,
    /// Observed a day to a year in the future (`timestamp_in_future`).
    FutureTimestamp,
    /// No MAC, IP or device id at all (`no_identifier`).
    NoIdentifier,
}

impl MalformedKind {
    pub const ALL: [MalformedKind; 9] = [
        MalformedKind::TruncatedAvro,
        MalformedKind::UnknownSchemaId,
        MalformedKind::GarbageBytes,
        MalformedKind::InvalidJson,
        MalformedKind::MissingTenant,
        MalformedKind::BadMac,
        MalformedKind::InvalidIp,
        MalformedKind::FutureTimestamp,
        MalformedKind::NoIdentifier,
    ];

    /// Stable name (ground-truth keys).
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedKind::TruncatedAvro => "truncated_avro",
            MalformedKind::UnknownSchemaId => "unknown_schema_id",
            MalformedKind::GarbageBytes => "garbage_bytes",
            MalformedKind::InvalidJson => "invalid_json",
            MalformedKind::MissingTenant => "missing_tenant",
            MalformedKind::BadMac => "bad_mac",
            MalformedKind::InvalidIp => "invalid_ip",
            MalformedKind::FutureTimestamp => "future_timestamp",
            MalformedKind::NoIdentifier => "no_identifier",
        }
    }
}

/// A malformed payload of `kind` built on `report`, and the reason sitetally rejects it
/// with. `avro` picks Avro (version 1) over JSON where the kind allows either;
/// `json_style` is the JSON dialect; future timestamps are relative to `now_ms`.
pub(crate) fn payload(
    kind: MalformedKind,
    mut report: Report<'_>,
    avro: bool,
    json_style: u8,
    now_ms: i64,
    rng: &mut StdRng,
    encoder: &Encoder,
) -> (Vec<u8>, &'static str) {
    let enc = if avro {
        Encoding::AvroV1
    } else {
        Encoding::Json
    };
    match kind {
        MalformedKind::TruncatedAvro => {
            let full = encoder.encode(&report, Encoding::AvroV1, 0);
            let cut = rng.gen_range(5..full.len());
            (full[..cut].to_vec(), "avro_decode")
        }
        MalformedKind::UnknownSchemaId => {
            let mut full = encoder.encode(&report, Encoding::AvroV1, 0);
            let id: u32 = rng.gen_range(100..1_000_000);
            full[1..5].copy_from_slice(&id.to_be_bytes());
            (full, "unknown_schema")
        }
        MalformedKind::GarbageBytes => {
            let len = rng.gen_range(1..64);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // Anything but Avro's magic byte and JSON's opening characters.
            bytes[0] = loop {
                let b: u8 = rng.gen();
                if !matches!(b, 0 | b'{' | b' ' | b'\t' | b'\r' | b'\n') {
                    break b;
                }
            };
            (bytes, "unknown_format")
        }
        MalformedKind::InvalidJson => {
            let full = encoder.encode(&report, Encoding::Json, json_style);
            let bytes = match rng.gen_range(0..3) {
                0 => full[..rng.gen_range(1..full.len() - 1)].to_vec(),
                1 => {
                    let text = String::from_utf8_lossy(&full).into_owned();
                    let at = text.find("\"observed_at\":").unwrap_or(0);
                    let end = text[at..].find(",\"").map_or(text.len() - 1, |e| at + e);
                    format!(
                        "{}\"observed_at\":\"yesterday\"{}",
                        &text[..at],
                        &text[end..]
                    )
                    .into_bytes()
                }
                _ => {
                    let mut b = full;
                    b.extend_from_slice(b"}{\"x\"");
                    b
                }
            };
            (bytes, "json_decode")
        }
        MalformedKind::MissingTenant => {
            if !avro && rng.gen_bool(0.5) {
                (encode_json(&report, json_style, true), "json_decode")
            } else {
                report.tenant = ["", " ", "\t"][rng.gen_range(0..3)];
                (encoder.encode(&report, enc, json_style), "missing_field")
            }
        }
        MalformedKind::BadMac => {
            const BAD: [&str; 7] = [
                "zz:11:22:33:44:55",
                "00:1b:1b:00:00",
                "001b-1b00-0001",
                "00:1b:1b:00:00:01:02",
                "00:1b-1b:00:00:01",
                "mac-unknown",
                "",
            ];
            let bad = BAD[rng.gen_range(0..BAD.len())].to_string();
            let at = rng.gen_range(0..=report.macs.len());
            report.macs.insert(at, bad);
            (encoder.encode(&report, enc, json_style), "invalid_mac")
        }
        MalformedKind::InvalidIp => {
            const BAD: [&str; 6] = [
                "10.0.0.300",
                "192.168.1",
                "fe80::zz",
                "10.1.2.3/24",
                "not-an-ip",
                "",
            ];
            report.macs.clear();
            let bad = BAD[rng.gen_range(0..BAD.len())].to_string();
            let at = rng.gen_range(0..=report.ips.len());
            report.ips.insert(at, bad);
            (encoder.encode(&report, enc, json_style), "invalid_ip")
        }
        MalformedKind::FutureTimestamp => {
            report.observed_at = now_ms + rng.gen_range(MS_PER_DAY..365 * MS_PER_DAY);
            (
                encoder.encode(&report, enc, json_style),
                "timestamp_in_future",
            )
        }
        MalformedKind::NoIdentifier => {
            report.macs.clear();
            report.ips.clear();
            report.device_id = None;
            (encoder.encode(&report, enc, json_style), "no_identifier")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::MessageKind;
    use crate::testing::{config, stream, NOW};
    use sitetally_core::codec::Codec;
    use sitetally_core::{Outcome, Pipeline, PipelineConfig};
    use std::collections::{HashMap, HashSet};

    /// Every malformed kind is rejected by the real pipeline with the expected reason;
    /// not-a-device reports are excluded; valid reports are new or duplicate, and the new
    /// ones per site and day are exactly the truth's per-day counts.
    #[test]
    fn pipeline_rejects_every_malformed_kind_and_counts_the_truth() {
        let mut c = config(5);
        c.malformed_fraction = 0.2;
        c.not_a_device_fraction = 0.05;
        let mut s = stream(c);
        let mut p = Pipeline::new(&PipelineConfig::default(), Codec::bundled());
        let mut kinds: HashMap<MalformedKind, u64> = HashMap::new();
        let mut reasons: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut new_rows: HashMap<(String, u16), u64> = HashMap::new();
        let mut not_a_device = 0;
        for m in s.by_ref() {
            let outcome = p.process(&m.payload, NOW);
            match m.kind {
                MessageKind::Malformed(kind) => {
                    let Outcome::Rejected(r) = &outcome else {
                        panic!(
                            "{kind:?} was not rejected: {outcome:?}\n{}",
                            String::from_utf8_lossy(&m.payload)
                        )
                    };
                    assert_eq!(Some(r.reason()), m.expected_reason, "{kind:?}: {r}");
                    *kinds.entry(kind).or_default() += 1;
                    reasons.entry(kind.as_str()).or_default().insert(r.reason());
                }
                MessageKind::NotADevice => {
                    assert!(matches!(outcome, Outcome::NotADevice(_)), "{outcome:?}");
                    not_a_device += 1;
                }
                MessageKind::Valid => match outcome {
                    Outcome::New(row) => {
                        *new_rows
                            .entry((format!("{}/{}", row.tenant, row.site), row.day))
                            .or_default() += 1;
                    }
                    Outcome::Duplicate => {}
                    other => panic!("valid message gave {other:?}"),
                },
            }
        }
        for kind in MalformedKind::ALL {
            assert!(
                kinds.get(&kind).copied().unwrap_or(0) > 0,
                "{kind:?} never generated"
            );
        }
        assert_eq!(
            reasons["missing_tenant"].len(),
            2,
            "both missing-tenant forms: {reasons:?}"
        );
        let truth = s.truth();
        assert_eq!(truth.not_a_device, not_a_device);
        assert_eq!(truth.malformed_total(), kinds.values().sum::<u64>());
        for kind in MalformedKind::ALL {
            assert_eq!(truth.malformed[kind.as_str()], kinds[&kind]);
        }
        assert_eq!(
            truth.messages,
            truth.valid + truth.not_a_device + truth.malformed_total()
        );
        for st in &truth.sites {
            let key = format!("{}/{}", st.tenant, st.site);
            for (day, n) in &st.by_day {
                assert_eq!(
                    new_rows.get(&(key.clone(), *day)).copied().unwrap_or(0),
                    *n,
                    "{key} day {day}"
                );
            }
        }
        let share = truth.malformed_total() as f64 / truth.messages as f64;
        assert!((0.17..0.23).contains(&share), "malformed share {share}");
    }
}
