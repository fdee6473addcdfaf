//! Hot-path Avro decoding: a writer schema compiled once into a flat list of steps that
//! read exactly the fields counting needs into a [`Report`] and skip the rest by type.
//!
//! Why: `serde_avro_fast` into `Report` costs ~460 ns per event here, most of it in serde's
//! field-name matching and per-field dispatch; a compiled plan reads the same bytes in a
//! fraction of that (see `benches/pipeline.rs` and load-tests/RESULTS.md). Any writer
//! schema the plan does not understand (missing required fields, unexpected types, named
//! references) gets no plan, and [`crate::codec::Codec`] falls back to `serde_avro_fast`,
//! so the plan is an optimisation, never a change of what is accepted. A property test
//! checks both paths agree.
//!
//! Fields counting does not read (vendor, model, ...) are skipped by type, strings still
//! checked to be UTF-8, so both paths reject the same corrupt messages (the
//! `decode_report` fuzz target checks accept/reject and fields against serde).

use crate::event::{DeviceCategory, Report, Text};
use apache_avro::Schema;
use std::borrow::Cow;

/// What a step does with one writer field.
#[derive(Debug, Clone)]
enum Step {
    Str(StrField),
    /// `zone` / `device_id`: a plain string or a union with null at `null_branch`.
    OptStr {
        field: OptField,
        null_branch: Option<u64>,
        branches: u64,
    },
    ObservedAt,
    List(ListField),
    /// Writer enum symbol index → category (None: a symbol the reader does not know).
    Category(Box<[Option<DeviceCategory>]>),
    AgentManaged,
    Skip(Skip),
}

#[derive(Debug, Clone, Copy)]
enum StrField {
    Tenant,
    Site,
    Sensor,
}

#[derive(Debug, Clone, Copy)]
enum OptField {
    Zone,
    DeviceId,
}

#[derive(Debug, Clone, Copy)]
enum ListField {
    Macs,
    Ips,
}

/// How to step over a value of a type counting does not read.
#[derive(Debug, Clone)]
enum Skip {
    Nothing,
    Bytes(usize),
    Varint,
    LengthPrefixed,
    /// A string counting does not read, still checked to be UTF-8 (as serde checks it),
    /// so both paths reject the same messages.
    Utf8,
    Array(Box<Skip>),
    Map(Box<Skip>),
    Union(Box<[Skip]>),
    Record(Box<[Skip]>),
}

impl Skip {
    /// Fewest bytes a value of this type occupies.
    fn min_bytes(&self) -> usize {
        match self {
            Skip::Nothing => 0,
            Skip::Bytes(n) => *n,
            Skip::Varint
            | Skip::LengthPrefixed
            | Skip::Utf8
            | Skip::Array(_)
            | Skip::Map(_)
            | Skip::Union(_) => 1,
            Skip::Record(fields) => fields.iter().map(Skip::min_bytes).sum(),
        }
    }
}

/// A compiled writer schema.
#[derive(Debug, Clone)]
pub struct ReportPlan {
    steps: Box<[Step]>,
}

impl ReportPlan {
    /// Compiles `writer`, or `None` when the plan cannot stand in for serde exactly.
    pub fn compile(writer: &Schema) -> Option<Self> {
        let Schema::Record(record) = writer else {
            return None;
        };
        let mut steps = Vec::with_capacity(record.fields.len());
        let mut required = [false; 4];
        for f in &record.fields {
            let step = match (f.name.as_str(), &f.schema) {
                ("tenant", Schema::String) => Step::Str(StrField::Tenant),
                ("site", Schema::String) => Step::Str(StrField::Site),
                ("sensor", Schema::String) => Step::Str(StrField::Sensor),
                ("observed_at", Schema::Long | Schema::TimestampMillis) => Step::ObservedAt,
                ("zone", s) => opt_str(OptField::Zone, s)?,
                ("device_id", s) => opt_str(OptField::DeviceId, s)?,
                ("macs", Schema::Array(a)) if *a.items == Schema::String => {
                    Step::List(ListField::Macs)
                }
                ("ips", Schema::Array(a)) if *a.items == Schema::String => {
                    Step::List(ListField::Ips)
                }
                ("category", Schema::Enum(e)) => Step::Category(
                    e.symbols
                        .iter()
                        .map(|s| {
                            DeviceCategory::ALL
                                .into_iter()
                                .find(|c| s == c.as_str() || *s == c.as_str().to_lowercase())
                        })
                        .collect(),
                ),
                ("agent_managed", Schema::Boolean) => Step::AgentManaged,
                // A field the reader has, with a type the plan does not handle: let serde decide.
                (
                    "tenant" | "site" | "sensor" | "observed_at" | "macs" | "ips" | "category"
                    | "agent_managed",
                    _,
                ) => return None,
                (_, s) => Step::Skip(skip_for(s)?),
            };
            if let Some(i) = ["tenant", "site", "sensor", "observed_at"]
                .iter()
                .position(|n| *n == f.name)
            {
                required[i] = true;
            }
            steps.push(step);
        }
        // A writer without a required field fails every message; serde says which.
        required.iter().all(|r| *r).then(|| Self {
            steps: steps.into(),
        })
    }

    /// Decodes one Avro body (after the 5-byte wire header).
    pub fn decode<'a>(&self, body: &'a [u8]) -> Result<Report<'a>, String> {
        let mut r = Reader { buf: body, pos: 0 };
        let mut out = Report::blank();
        for step in self.steps.iter() {
            match step {
                Step::Str(f) => {
                    let s = Cow::Borrowed(r.str()?);
                    match f {
                        StrField::Tenant => out.tenant = s,
                        StrField::Site => out.site = s,
                        StrField::Sensor => out.sensor = s,
                    }
                }
                Step::OptStr {
                    field,
                    null_branch,
                    branches,
                } => {
                    let value = match null_branch {
                        None => Some(Cow::Borrowed(r.str()?)),
                        Some(null) => {
                            let branch = r.long()?;
                            if branch < 0 || branch as u64 >= *branches {
                                return Err(format!("union branch {branch} out of range"));
                            }
                            if branch as u64 == *null {
                                None
                            } else {
                                Some(Cow::Borrowed(r.str()?))
                            }
                        }
                    };
                    match field {
                        OptField::Zone => out.zone = value,
                        OptField::DeviceId => out.device_id = value,
                    }
                }
                Step::ObservedAt => out.observed_at = r.long()?,
                Step::List(f) => {
                    let list = match f {
                        ListField::Macs => &mut out.macs,
                        ListField::Ips => &mut out.ips,
                    };
                    r.blocks(1, |r| {
                        list.push(Text::from(r.str()?));
                        Ok(())
                    })?;
                }
                Step::Category(symbols) => {
                    let i = r.long()?;
                    out.category = usize::try_from(i)
                        .ok()
                        .and_then(|i| symbols.get(i).copied())
                        .ok_or_else(|| format!("enum index {i} out of range"))?
                        .ok_or_else(|| format!("unknown device category (symbol {i})"))?;
                }
                Step::AgentManaged => {
                    out.agent_managed = match r.take(1)?[0] {
                        0 => false,
                        1 => true,
                        b => return Err(format!("invalid boolean byte {b}")),
                    }
                }
                Step::Skip(s) => r.skip(s)?,
            }
        }
        Ok(out)
    }
}

fn opt_str(field: OptField, s: &Schema) -> Option<Step> {
    match s {
        Schema::String => Some(Step::OptStr {
            field,
            null_branch: None,
            branches: 1,
        }),
        Schema::Union(u) => {
            let v = u.variants();
            let null = v.iter().position(|s| *s == Schema::Null)?;
            let other = v.iter().position(|s| *s == Schema::String)?;
            (v.len() == 2 && null != other).then_some(Step::OptStr {
                field,
                null_branch: Some(null as u64),
                branches: 2,
            })
        }
        _ => None,
    }
}

fn skip_for(s: &Schema) -> Option<Skip> {
    Some(match s {
        Schema::Null => Skip::Nothing,
        Schema::Boolean => Skip::Bytes(1),
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos
        | Schema::Enum(_) => Skip::Varint,
        Schema::Float => Skip::Bytes(4),
        Schema::Double => Skip::Bytes(8),
        Schema::String => Skip::Utf8,
        Schema::Bytes | Schema::BigDecimal => Skip::LengthPrefixed,
        Schema::Fixed(f) => Skip::Bytes(f.size),
        Schema::Duration => Skip::Bytes(12),
        Schema::Array(a) => Skip::Array(Box::new(skip_for(&a.items)?)),
        Schema::Map(m) => Skip::Map(Box::new(skip_for(&m.types)?)),
        Schema::Union(u) => Skip::Union(u.variants().iter().map(skip_for).collect::<Option<_>>()?),
        Schema::Record(r) => Skip::Record(
            r.fields
                .iter()
                .map(|f| skip_for(&f.schema))
                .collect::<Option<_>>()?,
        ),
        // Named references, decimals and UUIDs (whose encoding depends on an inner type):
        // leave those writers to serde.
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("unexpected end of data")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Zig-zag varint long.
    fn long(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("unexpected end of data")?;
            self.pos += 1;
            // The tenth byte holds bit 63 only: more would be silently cut off.
            if shift == 63 && b & 0x7f > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        simdutf8::basic::from_utf8(bytes).map_err(|_| "string is not valid UTF-8".to_string())
    }

    /// Array/map blocks: count (negative = followed by a byte size), items, until 0.
    /// Items of `item_bytes == 0` (nulls, empty records) are not visited: a hostile count
    /// of them must not spin; other items need at least a byte each, so a count beyond
    /// the remaining data is an error up front.
    fn blocks(
        &mut self,
        item_bytes: usize,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count.checked_neg().ok_or("invalid block count")?;
                self.long()?;
            }
            if item_bytes == 0 {
                continue;
            }
            if count as u64 > (self.buf.len() - self.pos) as u64 {
                return Err(format!("block of {count} items exceeds the data"));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    /// Steps over an array or map nobody reads. A block with a negative count carries its
    /// size in bytes (Avro's provision for fast skipping): skip those bytes, as the
    /// reference decoder does, without looking at the items.
    fn skip_blocks(
        &mut self,
        item_bytes: usize,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count.checked_neg().ok_or("invalid block count")?;
                let size = self.len()?;
                self.take(size)?;
                continue;
            }
            // Zero-size items (nulls, empty records): nothing to step over.
            if item_bytes == 0 {
                continue;
            }
            if count as u64 > (self.buf.len() - self.pos) as u64 {
                return Err(format!("block of {count} items exceeds the data"));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    fn skip(&mut self, s: &Skip) -> Result<(), String> {
        match s {
            Skip::Nothing => Ok(()),
            Skip::Bytes(n) => self.take(*n).map(drop),
            Skip::Varint => self.long().map(drop),
            Skip::LengthPrefixed => {
                let n = self.len()?;
                self.take(n).map(drop)
            }
            Skip::Utf8 => self.str().map(drop),
            Skip::Array(items) => self.skip_blocks(items.min_bytes(), |r| r.skip(items)),
            Skip::Map(values) => self.skip_blocks(1, |r| {
                r.skip(&Skip::Utf8)?;
                r.skip(values)
            }),
            Skip::Union(branches) => {
                let i = self.long()?;
                let b = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| format!("union branch {i} out of range"))?;
                self.skip(b)
            }
            Skip::Record(fields) => fields.iter().try_for_each(|f| self.skip(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{bundled_avro_schema, encode_avro, BUNDLED_SCHEMAS};
    use crate::event::Discovery;
    use proptest::prelude::*;

    fn serde_decode<'a>(
        schema: &serde_avro_fast::Schema,
        body: &'a [u8],
    ) -> Result<Report<'a>, String> {
        serde_avro_fast::from_datum_slice(body, schema).map_err(|e| e.to_string())
    }

    fn v2_body(e: &Discovery<'_>, firmware: Option<&str>, protocols: &[String]) -> Vec<u8> {
        use apache_avro::types::Value;
        let v2 = apache_avro::Schema::parse_str(BUNDLED_SCHEMAS[1].1).unwrap();
        let mut value = apache_avro::to_value(e).unwrap();
        if let Value::Record(fields) = &mut value {
            let fw = match firmware {
                Some(f) => Value::Union(1, Box::new(Value::String(f.into()))),
                None => Value::Union(0, Box::new(Value::Null)),
            };
            fields.push(("firmware".into(), fw));
            fields.push((
                "protocols".into(),
                Value::Array(protocols.iter().map(|p| Value::String(p.clone())).collect()),
            ));
        }
        apache_avro::to_avro_datum(&v2, value.resolve(&v2).unwrap()).unwrap()
    }

    fn arb_event() -> impl Strategy<Value = Discovery<'static>> {
        crate::event::arb_discovery("[a-zA-Z0-9:.\\- é]{0,24}")
    }

    fn plans() -> Vec<(ReportPlan, serde_avro_fast::Schema)> {
        BUNDLED_SCHEMAS
            .iter()
            .map(|(_, json)| {
                let plan = ReportPlan::compile(&apache_avro::Schema::parse_str(json).unwrap())
                    .expect("bundled schemas compile");
                (plan, json.parse().unwrap())
            })
            .collect()
    }

    proptest! {
        #[test]
        fn plan_and_serde_agree_on_v1_and_v2(e in arb_event(), fw in proptest::option::of("[a-z0-9.]{0,8}"),
                                             protocols in proptest::collection::vec("[A-Za-z0-9]{0,8}", 0..4),
                                             cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
            let p = plans();
            let v1 = encode_avro(&e, 1, &bundled_avro_schema(1).unwrap()).unwrap()[5..].to_vec();
            let v2 = v2_body(&e, fw.as_deref(), &protocols);
            for ((plan, schema), body) in p.iter().zip([v1, v2]) {
                let fast = plan.decode(&body).unwrap();
                prop_assert_eq!(&fast, &serde_decode(schema, &body).unwrap());
                prop_assert_eq!((&fast.tenant, fast.observed_at, fast.macs.len()), (&e.tenant, e.observed_at, e.macs.len()));
                // Truncated bodies fail on both paths.
                let short = &body[..cut.index(body.len())];
                prop_assert!(plan.decode(short).is_err());
                prop_assert!(serde_decode(schema, short).is_err());
                // A corrupted byte: where both accept it, they read the same. (They may
                // disagree on accepting it: serde_avro_fast tolerates some out-of-range union
                // indexes in skipped fields that the plan rejects, and the plan does not
                // UTF-8-check fields it skips.)
                let mut bad = body.clone();
                let i = flip.0.index(bad.len());
                bad[i] ^= flip.1 | 1;
                let agree = match (serde_decode(schema, &bad), plan.decode(&bad)) {
                    (Ok(s), Ok(p)) => s == p,
                    _ => true,
                };
                prop_assert!(agree, "serde accepted a corrupted body the plan read differently: byte {} of {:?}: serde {:?} plan {:?}", i, bad, serde_decode(schema, &bad), plan.decode(&bad));
            }
        }
    }

    #[test]
    fn writers_the_plan_cannot_mirror_get_no_plan() {
        let parse = |s: &str| apache_avro::Schema::parse_str(s).unwrap();
        let no_tenant = r#"{"type":"record","name":"D","fields":[{"name":"site","type":"string"},{"name":"sensor","type":"string"},{"name":"observed_at","type":"long"}]}"#;
        assert!(
            ReportPlan::compile(&parse(no_tenant)).is_none(),
            "missing required field: serde reports it"
        );
        let odd_type = r#"{"type":"record","name":"D","fields":[{"name":"tenant","type":"string"},{"name":"site","type":"string"},{"name":"sensor","type":"string"},{"name":"observed_at","type":"string"}]}"#;
        assert!(ReportPlan::compile(&parse(odd_type)).is_none());
        let minimal = r#"{"type":"record","name":"D","fields":[{"name":"tenant","type":"string"},{"name":"site","type":"string"},{"name":"sensor","type":"string"},{"name":"observed_at","type":"long"},
            {"name":"extra","type":{"type":"map","values":{"type":"record","name":"X","fields":[{"name":"a","type":["null","double"]},{"name":"f","type":{"type":"fixed","name":"F","size":3}}]}}}]}"#;
        let plan = ReportPlan::compile(&parse(minimal)).expect("skippable extras compile");
        // tenant "t", site "s", sensor "x", observed_at 5, map with one entry {"k": {a: 1.0, f: "abc"}}, end.
        let mut body = vec![2, b't', 2, b's', 2, b'x', 10, 2, 2, b'k', 2];
        body.extend_from_slice(&1.0f64.to_le_bytes());
        body.extend_from_slice(b"abc");
        body.push(0);
        let r = plan.decode(&body).unwrap();
        assert_eq!(
            (
                r.tenant.as_ref(),
                r.site.as_ref(),
                r.sensor.as_ref(),
                r.observed_at
            ),
            ("t", "s", "x", 5)
        );
        assert!(r.macs.is_empty() && r.zone.is_none());
    }

    #[test]
    fn hostile_block_counts_neither_spin_nor_overread() {
        let w = r#"{"type":"record","name":"D","fields":[{"name":"tenant","type":"string"},{"name":"site","type":"string"},{"name":"sensor","type":"string"},{"name":"observed_at","type":"long"},
            {"name":"nulls","type":{"type":"array","items":"null"}},{"name":"macs","type":{"type":"array","items":"string"}}]}"#;
        let plan = ReportPlan::compile(&apache_avro::Schema::parse_str(w).unwrap()).unwrap();
        // 2^62 nulls (zig-zag varint of 2^62), then a MAC array claiming 2^62 entries.
        let huge = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        let mut body = vec![2, b't', 2, b's', 2, b'x', 10];
        body.extend_from_slice(&huge);
        body.push(0);
        body.extend_from_slice(&huge);
        body.extend_from_slice(&[2, b'a']);
        let err = plan.decode(&body).unwrap_err();
        assert!(err.contains("exceeds the data"), "{err}");
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            for (plan, _) in plans() {
                let _ = plan.decode(&body);
            }
        }
    }

    #[test]
    fn unknown_category_symbol_is_an_error() {
        let w = r#"{"type":"record","name":"D","fields":[{"name":"tenant","type":"string"},{"name":"site","type":"string"},{"name":"sensor","type":"string"},{"name":"observed_at","type":"long"},
            {"name":"category","type":{"type":"enum","name":"C","symbols":["OT","ROBOT"]}}]}"#;
        let plan = ReportPlan::compile(&apache_avro::Schema::parse_str(w).unwrap()).unwrap();
        let ok = [2, b't', 2, b's', 2, b'x', 10, 0];
        assert_eq!(plan.decode(&ok).unwrap().category, DeviceCategory::Ot);
        let robot = [2, b't', 2, b's', 2, b'x', 10, 2];
        assert!(plan
            .decode(&robot)
            .unwrap_err()
            .contains("unknown device category"));
        let serde: serde_avro_fast::Schema = w.parse().unwrap();
        assert!(
            serde_decode(&serde, &robot).is_err(),
            "serde rejects it too"
        );
    }
}
