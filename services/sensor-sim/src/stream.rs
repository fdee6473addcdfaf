//! The event stream: the world's sensors reporting its devices, encoded as sitetally
//! receives them (Avro in the schema-registry wire format, schema ids 1 and 2, or JSON),
//! interleaved across sites, with a trickle of malformed messages and of valid reports
//! about things that are not devices.
//!
//! Schedule: each simulated day has `reports_per_device + growth_rounds` rounds; in
//! every round each device due that day is reported once, by the next of its sensors,
//! in a freshly shuffled order across all sites. A device is due in `reports_per_device`
//! consecutive rounds per day (from its birth round on its birth day), so every device
//! is reported at least that many times by at least two sensors. Round `r` of a day
//! has timestamps in the `r`-th slice of that day's window: the whole UTC day for past
//! days, the last `recent_window_ms` before `now_ms` (within its UTC day) for the last.

use crate::truth::{GroundTruth, TruthRecorder};
use crate::world::World;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sitetally_core::{DeviceCategory, Discovery, MS_PER_DAY};
use std::borrow::Cow;
use std::sync::Arc;

/// Ways a simulated message is malformed. Each is rejected by sitetally and belongs in
/// the dead-letter topic; [`SimMessage::expected_reason`] gives the reason code.
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

/// What a simulated message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A valid report of a device: counted.
    Valid,
    /// A valid report of a public IP, multicast or broadcast address: not counted, not
    /// dead-lettered.
    NotADevice,
    /// Bad input: dead-lettered.
    Malformed(MalformedKind),
}

/// One message as produced to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    /// `tenant/site`.
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub kind: MessageKind,
    /// For malformed messages, the rejection reason sitetally gives them
    /// (`sitetally_core::pipeline::Rejection::reason`).
    pub expected_reason: Option<&'static str>,
}

/// Bundled schema id of version 1 of the event schema.
pub const SCHEMA_V1: u32 = 1;
/// Bundled schema id of version 2 (adds `firmware` and `protocols`).
pub const SCHEMA_V2: u32 = 2;

/// A report before encoding; strings borrow from the world where they can.
struct Report<'w> {
    tenant: &'w str,
    site: &'w str,
    sensor: &'w str,
    observed_at: i64,
    zone: Option<&'w str>,
    device_id: Option<String>,
    macs: Vec<String>,
    ips: Vec<String>,
    category: DeviceCategory,
    agent_managed: bool,
    vendor: Option<&'w str>,
    model: Option<&'w str>,
    hostname: Option<&'w str>,
    firmware: Option<&'w str>,
    protocols: &'w [&'w str],
}

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
enum Encoding {
    AvroV1,
    AvroV2,
    Json,
}

/// Writes MAC `v` in one of the spellings sitetally accepts, in random case.
pub fn spell_mac(v: u64, style: u8, upper: bool) -> String {
    let b = v.to_be_bytes();
    let b = &b[2..];
    let s = match style % 4 {
        0 => format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        ),
        1 => format!(
            "{:02x}-{:02x}-{:02x}-{:02x}-{:02x}-{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        ),
        2 => format!(
            "{:02x}{:02x}.{:02x}{:02x}.{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        ),
        _ => format!(
            "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        ),
    };
    if upper {
        s.to_ascii_uppercase()
    } else {
        s
    }
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

/// Where the stream is in its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Scheduled,
    /// After the schedule, in endless mode: every device again, last day.
    Repeat,
    Done,
}

/// Iterator over the simulated messages of a [`World`]. Deterministic: the same world
/// and `now_ms` give the same messages, byte for byte.
pub struct EventStream {
    world: Arc<World>,
    now_ms: i64,
    rng: StdRng,
    v1: serde_avro_fast::Schema,
    v2: serde_avro_fast::Schema,
    phase: Phase,
    day: u16,
    round: u32,
    queue: Vec<u32>,
    pos: usize,
    /// Timestamps of the current round fall within `slice`.
    slice: (i64, i64),
    truth: TruthRecorder,
}

impl EventStream {
    /// A stream over `world` whose last simulated day is the UTC day of `now_ms`; no
    /// valid event is later than `now_ms`.
    pub fn new(world: Arc<World>, now_ms: i64) -> EventStream {
        let schema = |id: u32| -> serde_avro_fast::Schema {
            let (_, json) = sitetally_core::codec::BUNDLED_SCHEMAS
                .iter()
                .find(|(i, _)| *i == id)
                .expect("bundled schema ids 1 and 2 exist");
            json.parse().expect("bundled schemas parse")
        };
        let truth = TruthRecorder::new(&world);
        let mut s = EventStream {
            rng: StdRng::seed_from_u64(world.config.seed ^ 0x5157_4e53_494d_0001),
            now_ms,
            v1: schema(SCHEMA_V1),
            v2: schema(SCHEMA_V2),
            phase: Phase::Scheduled,
            day: 0,
            round: 0,
            queue: Vec::new(),
            pos: 0,
            slice: (now_ms, now_ms),
            truth,
            world,
        };
        s.fill_round();
        s
    }

    /// The world this stream reports.
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// Exact truth of everything emitted so far.
    pub fn truth(&self) -> GroundTruth {
        self.truth.snapshot(&self.world, self.now_ms)
    }

    /// Whether the planned schedule has been emitted completely (endless streams go on
    /// with repeat reports that do not change the truth).
    pub fn schedule_complete(&self) -> bool {
        self.phase != Phase::Scheduled
    }

    /// Start (inclusive) and end (inclusive) of simulated day `day`'s timestamps.
    fn day_window(&self, day: u16) -> (i64, i64) {
        let back = (self.world.config.days - 1 - day) as i64;
        let today = self.now_ms.div_euclid(MS_PER_DAY) * MS_PER_DAY;
        if back == 0 {
            let start = today.max(self.now_ms - self.world.config.recent_window_ms);
            (start, self.now_ms)
        } else {
            let start = today - back * MS_PER_DAY;
            (start, start + MS_PER_DAY - 1)
        }
    }

    /// Fills the queue with the devices due in the current round, shuffled.
    fn fill_round(&mut self) {
        let reports = self.world.config.reports_per_device;
        let (start, end) = self.day_window(self.day);
        self.queue.clear();
        self.pos = 0;
        match self.phase {
            Phase::Scheduled => {
                let rounds = self.world.config.rounds_per_day() as i64;
                let span = end - start + 1;
                let r = self.round as i64;
                self.slice = (
                    start + span * r / rounds,
                    (start + span * (r + 1) / rounds - 1).max(start),
                );
                let (day, round) = (self.day, self.round);
                self.queue.extend(
                    self.world
                        .devices
                        .iter()
                        .enumerate()
                        .filter(|(_, d)| d.reported_in(day, round, reports))
                        .map(|(i, _)| i as u32),
                );
            }
            Phase::Repeat => {
                self.slice = (start, end);
                self.queue.extend(0..self.world.devices.len() as u32);
            }
            Phase::Done => return,
        }
        self.queue.shuffle(&mut self.rng);
    }

    /// Moves to the next round; false when the stream is over.
    fn advance(&mut self) -> bool {
        match self.phase {
            Phase::Done => return false,
            Phase::Repeat => {}
            Phase::Scheduled => {
                self.round += 1;
                if self.round >= self.world.config.rounds_per_day() {
                    self.round = 0;
                    self.day += 1;
                }
                if self.day >= self.world.config.days {
                    self.day = self.world.config.days - 1;
                    self.phase = if self.world.config.endless {
                        Phase::Repeat
                    } else {
                        Phase::Done
                    };
                }
            }
        }
        self.fill_round();
        self.phase != Phase::Done
    }

    fn pick_encoding(&mut self) -> Encoding {
        if self.rng.gen_bool(self.world.config.avro_fraction) {
            if self.rng.gen_bool(0.2) {
                Encoding::AvroV2
            } else {
                Encoding::AvroV1
            }
        } else {
            Encoding::Json
        }
    }

    /// Where in the schedule the stream is (for [`report`]).
    fn round_position(&self) -> RoundPosition {
        RoundPosition {
            scheduled: self.phase == Phase::Scheduled,
            day: self.day,
            round: self.round,
            slice: self.slice,
        }
    }

    /// The UTC day of the current round (all of a round lies within one UTC day).
    fn utc_day(&self) -> u16 {
        sitetally_core::day_of(self.slice.0)
    }

    fn valid(&mut self, idx: usize) -> SimMessage {
        let enc = self.pick_encoding();
        let json_style = self.rng.gen_range(0..10u8);
        let at = self.round_position();
        let report = report(&self.world, &mut self.rng, at, idx);
        let payload = encode(&report, enc, json_style, &self.v1, &self.v2);
        let key = self.world.sites[self.world.devices[idx].site as usize]
            .key
            .clone();
        let day = self.utc_day();
        self.truth.valid(&self.world, idx, day);
        SimMessage {
            key,
            payload,
            kind: MessageKind::Valid,
            expected_reason: None,
        }
    }

    /// A valid report about something that is not a device, "seen" at `idx`'s site.
    fn not_a_device(&mut self, idx: usize) -> SimMessage {
        let enc = self.pick_encoding();
        let json_style = self.rng.gen_range(0..10u8);
        let at = self.round_position();
        let mut report = report(&self.world, &mut self.rng, at, idx);
        report.device_id = None;
        report.hostname = None;
        report.category = DeviceCategory::Unknown;
        report.vendor = None;
        report.model = None;
        let rng = &mut self.rng;
        let public_v4 = |rng: &mut StdRng| {
            const FIRST: [u8; 10] = [8, 13, 20, 23, 34, 52, 104, 142, 151, 185];
            format!(
                "{}.{}.{}.{}",
                FIRST[rng.gen_range(0..FIRST.len())],
                rng.gen_range(0..=255u8),
                rng.gen_range(0..=255u8),
                rng.gen_range(1..=254u8)
            )
        };
        let (macs, ips): (Vec<String>, Vec<String>) = match rng.gen_range(0..6) {
            0 => (vec![], vec![public_v4(rng)]),
            1 => (
                vec![],
                vec![format!(
                    "2606:4700:{:x}::{:x}",
                    rng.gen::<u16>(),
                    rng.gen::<u16>()
                )],
            ),
            2 => (
                vec![],
                vec!["224.0.0.251".into(), "239.255.255.250".into()][rng.gen_range(0..2)..]
                    .to_vec(),
            ),
            3 => (
                vec![spell_mac(
                    0x0100_5e00_0000 | rng.gen_range(0..0x7f_ffff),
                    rng.gen_range(0..4),
                    false,
                )],
                vec![format!(
                    "239.{}.{}.{}",
                    rng.gen::<u8>(),
                    rng.gen::<u8>(),
                    rng.gen_range(1..255u8)
                )],
            ),
            4 => (vec![], vec!["255.255.255.255".into()]),
            _ => (
                vec![spell_mac(
                    0xffff_ffff_ffff,
                    rng.gen_range(0..4),
                    rng.gen_bool(0.5),
                )],
                vec![public_v4(rng)],
            ),
        };
        report.macs = macs;
        report.ips = ips;
        let payload = encode(&report, enc, json_style, &self.v1, &self.v2);
        let key = self.world.sites[self.world.devices[idx].site as usize]
            .key
            .clone();
        self.truth.not_a_device();
        SimMessage {
            key,
            payload,
            kind: MessageKind::NotADevice,
            expected_reason: None,
        }
    }

    /// A malformed message built on a report of device `idx`.
    fn malformed(&mut self, idx: usize) -> SimMessage {
        let kind = MalformedKind::ALL[self.rng.gen_range(0..MalformedKind::ALL.len())];
        let avro = self.rng.gen_bool(0.5);
        let enc = if avro {
            Encoding::AvroV1
        } else {
            Encoding::Json
        };
        let json_style = self.rng.gen_range(0..10u8);
        let now = self.now_ms;
        let at = self.round_position();
        let mut report = report(&self.world, &mut self.rng, at, idx);
        let (payload, reason) = {
            let rng = &mut self.rng;
            let (v1, v2) = (&self.v1, &self.v2);
            match kind {
                MalformedKind::TruncatedAvro => {
                    let full = encode(&report, Encoding::AvroV1, 0, v1, v2);
                    let cut = rng.gen_range(5..full.len());
                    (full[..cut].to_vec(), "avro_decode")
                }
                MalformedKind::UnknownSchemaId => {
                    let mut full = encode(&report, Encoding::AvroV1, 0, v1, v2);
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
                    let full = encode(&report, Encoding::Json, json_style, v1, v2);
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
                        (encode(&report, enc, json_style, v1, v2), "missing_field")
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
                    (encode(&report, enc, json_style, v1, v2), "invalid_mac")
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
                    (encode(&report, enc, json_style, v1, v2), "invalid_ip")
                }
                MalformedKind::FutureTimestamp => {
                    report.observed_at = now + rng.gen_range(MS_PER_DAY..365 * MS_PER_DAY);
                    (
                        encode(&report, enc, json_style, v1, v2),
                        "timestamp_in_future",
                    )
                }
                MalformedKind::NoIdentifier => {
                    report.macs.clear();
                    report.ips.clear();
                    report.device_id = None;
                    (encode(&report, enc, json_style, v1, v2), "no_identifier")
                }
            }
        };
        let key = self.world.sites[self.world.devices[idx].site as usize]
            .key
            .clone();
        self.truth.malformed(kind, reason);
        SimMessage {
            key,
            payload,
            kind: MessageKind::Malformed(kind),
            expected_reason: Some(reason),
        }
    }
}

impl Iterator for EventStream {
    type Item = SimMessage;

    fn next(&mut self) -> Option<SimMessage> {
        while self.pos >= self.queue.len() {
            if !self.advance() {
                return None;
            }
        }
        let idx = self.queue[self.pos] as usize;
        let (mal, nad) = (
            self.world.config.malformed_fraction,
            self.world.config.not_a_device_fraction,
        );
        let u: f64 = self.rng.gen();
        Some(if u < mal {
            self.malformed(idx)
        } else if u < mal + nad {
            self.not_a_device(idx)
        } else {
            self.pos += 1;
            self.valid(idx)
        })
    }
}

/// Where in the schedule a report is made.
#[derive(Debug, Clone, Copy)]
struct RoundPosition {
    scheduled: bool,
    day: u16,
    round: u32,
    slice: (i64, i64),
}

/// A valid report of device `idx` at position `at`: MACs in random spellings and order,
/// the sensor whose turn it is, a timestamp within the round's slice.
fn report<'w>(world: &'w World, rng: &mut StdRng, at: RoundPosition, idx: usize) -> Report<'w> {
    let d = &world.devices[idx];
    let site = &world.sites[d.site as usize];
    let sensor = if at.scheduled {
        let k = d.report_index(at.day, at.round) as usize;
        d.sensors[k % d.sensors.len()]
    } else {
        d.sensors[rng.gen_range(0..d.sensors.len())]
    };
    let mut macs: Vec<String> = d
        .macs
        .iter()
        .map(|&m| spell_mac(m, rng.gen_range(0..4), rng.gen_bool(0.3)))
        .collect();
    macs.shuffle(rng);
    let mut ips: Vec<String> = d.ips.iter().map(|ip| ip.to_string()).collect();
    if !d.macs.is_empty() {
        ips.shuffle(rng);
    }
    // IP-only devices are keyed by zone, so their zone is always reported.
    let zone =
        (d.macs.is_empty() || rng.gen_bool(0.9)).then(|| site.zones[d.zone as usize].as_str());
    let device_id = rng
        .gen_bool(0.5)
        .then(|| format!("{}-{}", site.sensors[sensor as usize], idx));
    let observed_at = rng.gen_range(at.slice.0..=at.slice.1);
    Report {
        tenant: &site.tenant,
        site: &site.name,
        sensor: &site.sensors[sensor as usize],
        observed_at,
        zone,
        device_id,
        macs,
        ips,
        category: d.category,
        agent_managed: d.agent_managed,
        vendor: Some(d.vendor).filter(|v| !v.is_empty()),
        model: Some(d.model).filter(|v| !v.is_empty()),
        hostname: d.hostname.as_deref(),
        firmware: Some(d.firmware).filter(|v| !v.is_empty()),
        protocols: d.protocols,
    }
}

fn encode(
    r: &Report<'_>,
    enc: Encoding,
    json_style: u8,
    v1: &serde_avro_fast::Schema,
    v2: &serde_avro_fast::Schema,
) -> Vec<u8> {
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
            (SCHEMA_V1, avro_body(&event, v1))
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
            (SCHEMA_V2, avro_body(&event, v2))
        }
    };
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn avro_body<T: Serialize>(value: &T, schema: &serde_avro_fast::Schema) -> Vec<u8> {
    let mut config = serde_avro_fast::ser::SerializerConfig::new(schema);
    // The records are built from the bundled schemas' own field lists; a failure here is
    // a bug in this crate, not bad input.
    serde_avro_fast::to_datum_vec(value, &mut config).expect("simulated event matches its schema")
}

/// JSON in a few sensor dialects: epoch ms or RFC 3339 (UTC or with an offset),
/// upper- or lower-case category.
fn encode_json(r: &Report<'_>, style: u8, omit_tenant: bool) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::SimConfig;
    use sitetally_core::codec::Codec;
    use sitetally_core::identity::{identify, Identified};
    use sitetally_core::{Outcome, Pipeline, PipelineConfig};
    use std::collections::{BTreeMap, HashMap, HashSet};

    /// 2026-11-23T09:00:00Z
    const NOW: i64 = 1_795_424_400_000;

    fn config(seed: u64) -> SimConfig {
        let mut c = SimConfig::new(seed, 24);
        c.sizes = crate::SizeProfile::Realistic { min: 3, max: 600 };
        c.days = 3;
        c.grow_sites = 4;
        c
    }

    fn stream(c: SimConfig) -> EventStream {
        EventStream::new(Arc::new(World::new(c).unwrap()), NOW)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a: Vec<SimMessage> = stream(config(7)).take(5_000).collect();
        let b: Vec<SimMessage> = stream(config(7)).take(5_000).collect();
        assert_eq!(a, b);
        let c: Vec<SimMessage> = stream(config(8)).take(5_000).collect();
        assert_ne!(a, c);
        let mut small = config(7);
        small.sizes = crate::SizeProfile::Realistic { min: 3, max: 120 };
        let mut s = stream(small.clone());
        s.by_ref().for_each(drop);
        let mut t = stream(small);
        t.by_ref().for_each(drop);
        assert_eq!(s.truth(), t.truth());
    }

    #[test]
    fn avro_v1_matches_the_core_encoder_byte_for_byte() {
        let s = stream(config(1));
        let world = s.world().clone();
        let mut rng = StdRng::seed_from_u64(1);
        let schema = sitetally_core::codec::bundled_avro_schema(SCHEMA_V1).unwrap();
        for idx in (0..world.devices.len()).step_by(97) {
            let r = report(&world, &mut rng, s.round_position(), idx);
            let ours = encode(&r, Encoding::AvroV1, 0, &s.v1, &s.v2);
            let event = Codec::bundled().decode(&ours).unwrap();
            let core = sitetally_core::codec::encode_avro(&event, SCHEMA_V1, &schema).unwrap();
            assert_eq!(ours, core);
        }
    }

    /// Decodes every valid message with the core codec and identity rules and recounts
    /// distinct devices per site, per day and per category: the truth must agree.
    #[test]
    fn truth_equals_a_recount_of_the_valid_messages() {
        let mut s = stream(config(11));
        let mut codec = Codec::bundled();
        let mut per_site: HashMap<String, HashMap<u64, DeviceCategory>> = HashMap::new();
        let mut per_day: HashMap<(String, u16), HashSet<u64>> = HashMap::new();
        // Per device and day: reports and the sensors that made them.
        let mut reports: HashMap<(String, u64, u16), (u32, HashSet<String>)> = HashMap::new();
        let mut spellings: HashMap<u64, HashSet<String>> = HashMap::new();
        let (mut avro, mut json, mut v2, mut rfc) = (0, 0, 0, 0);
        let mut valid = 0;
        for m in s.by_ref() {
            if m.kind != MessageKind::Valid {
                continue;
            }
            valid += 1;
            match m.payload[0] {
                0 if m.payload[4] == 2 => v2 += 1,
                0 => avro += 1,
                _ => {
                    json += 1;
                    rfc += usize::from(
                        !m.payload
                            .windows(14)
                            .any(|w| w == b"\"observed_at\":".as_slice())
                            || m.payload
                                .windows(15)
                                .any(|w| w == b"\"observed_at\":\"".as_slice()),
                    );
                }
            }
            let e = codec.decode(&m.payload).unwrap();
            let site = format!("{}/{}", e.tenant, e.site);
            assert_eq!(site.as_bytes(), m.key.as_slice());
            assert!(e.observed_at <= NOW && e.observed_at > NOW - 3 * MS_PER_DAY);
            let Ok(Identified::Device(d)) = identify(
                e.macs.iter().map(|x| x.as_ref()),
                e.ips.iter().map(|x| x.as_ref()),
                e.zone.as_deref(),
                &e.sensor,
                e.device_id.as_deref(),
            ) else {
                panic!("valid message is not a device: {e:?}")
            };
            let day = sitetally_core::day_of(e.observed_at);
            per_site
                .entry(site.clone())
                .or_default()
                .insert(d.key, e.category);
            per_day
                .entry((site.clone(), day))
                .or_default()
                .insert(d.key);
            let r = reports.entry((site, d.key, day)).or_default();
            r.0 += 1;
            r.1.insert(e.sensor.to_string());
            if let Some(first) = e.macs.first() {
                spellings
                    .entry(d.key)
                    .or_default()
                    .insert(first.to_string());
            }
        }
        let truth = s.truth();
        assert_eq!(truth.valid, valid);
        assert!(
            avro > 0 && json > 0 && v2 > 0 && rfc > 0,
            "{avro} {json} {v2} {rfc}"
        );
        for st in &truth.sites {
            let key = format!("{}/{}", st.tenant, st.site);
            let devices = per_site.get(&key).map_or(0, |m| m.len() as u64);
            assert_eq!(st.devices, devices, "{key}");
            assert_eq!(
                st.devices, st.planned_devices,
                "a complete run reports every device"
            );
            let mut by_cat: BTreeMap<String, u64> = BTreeMap::new();
            for c in per_site[&key].values() {
                *by_cat.entry(c.as_str().to_string()).or_default() += 1;
            }
            assert_eq!(st.by_category, by_cat, "{key}");
            for (day, n) in &st.by_day {
                assert_eq!(
                    per_day[&(key.clone(), *day)].len() as u64,
                    *n,
                    "{key} day {day}"
                );
            }
            assert_eq!(st.by_day.len(), 3, "{key}: one entry per simulated day");
        }
        assert_eq!(per_day.len(), truth.sites.len() * 3);
        for ((site, _, day), (n, sensors)) in &reports {
            assert!(*n >= 3, "{site} day {day}: a device reported {n} times");
            assert!(sensors.len() >= 2, "{site} day {day}: one sensor only");
        }
        let varied = spellings.values().filter(|s| s.len() > 1).count();
        assert!(
            varied * 2 > spellings.len(),
            "MAC spellings vary across reports"
        );
        // Grown sites end over their tier and grow day by day.
        let grown: Vec<_> = truth.sites.iter().filter(|s| s.grown).collect();
        assert_eq!(grown.len(), 4);
        for g in grown {
            assert!(g.over_tier, "{g:?}");
            let days: Vec<u64> = g.by_day.values().copied().collect();
            assert!(days.windows(2).all(|w| w[0] < w[1]), "{days:?}");
            let cap = g.licence.as_ref().unwrap().capacity as u64;
            assert!(g.devices > cap + cap / 10, "{g:?}");
        }
        assert!(truth
            .sites
            .iter()
            .filter(|s| !s.grown)
            .all(|s| !s.over_tier));
    }

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

    #[test]
    fn default_fractions_and_the_recent_window() {
        let mut c = SimConfig::new(2, 10);
        c.sizes = crate::SizeProfile::Explicit(vec![50, 400, 2_000]);
        let mut s = stream(c);
        let mut codec = Codec::bundled();
        let mut n = 0u64;
        for m in s.by_ref() {
            n += 1;
            if m.kind == MessageKind::Valid {
                let e = codec.decode(&m.payload).unwrap();
                assert!(e.observed_at <= NOW && e.observed_at >= NOW - 3 * 3_600_000);
            }
        }
        let t = s.truth();
        assert_eq!(t.messages, n);
        let mal = t.malformed_total() as f64 / n as f64;
        assert!((0.005..0.015).contains(&mal), "{mal}");
        assert!(t.not_a_device > 0);
        assert_eq!(t.valid, s.world().planned_reports());
    }

    #[test]
    fn endless_streams_repeat_without_changing_the_truth() {
        let mut c = config(3);
        c.days = 1;
        let finite = {
            let mut s = stream(c.clone());
            s.by_ref().for_each(drop);
            s.truth()
        };
        c.endless = true;
        let mut s = stream(c);
        let planned = s.world().planned_messages() as usize;
        assert_eq!(s.by_ref().take(planned * 3).count(), planned * 3);
        assert!(s.schedule_complete());
        let endless = s.truth();
        assert!(endless.valid > finite.valid);
        for (a, b) in finite.sites.iter().zip(&endless.sites) {
            assert_eq!(
                (a.devices, &a.by_day, &a.by_category),
                (b.devices, &b.by_day, &b.by_category)
            );
        }
    }

    #[test]
    fn a_cut_short_stream_has_an_exact_truth_of_what_it_sent() {
        let mut s = stream(config(4));
        let mut codec = Codec::bundled();
        let mut keys: HashMap<Vec<u8>, HashSet<u64>> = HashMap::new();
        for m in s.by_ref().take(3_000) {
            if m.kind == MessageKind::Valid {
                let e = codec.decode(&m.payload).unwrap();
                let Ok(Identified::Device(d)) = identify(
                    e.macs.iter().map(|x| x.as_ref()),
                    e.ips.iter().map(|x| x.as_ref()),
                    e.zone.as_deref(),
                    &e.sensor,
                    None,
                ) else {
                    panic!()
                };
                keys.entry(m.key.clone()).or_default().insert(d.key);
            }
        }
        let t = s.truth();
        assert_eq!(t.messages, 3_000);
        for st in &t.sites {
            let key = format!("{}/{}", st.tenant, st.site).into_bytes();
            assert_eq!(st.devices, keys.get(&key).map_or(0, |k| k.len() as u64));
        }
    }

    #[test]
    fn mac_spellings_parse_to_the_same_mac() {
        for style in 0..4 {
            for upper in [false, true] {
                let s = spell_mac(0x001b_1b00_0a0f, style, upper);
                assert_eq!(
                    sitetally_core::identity::Mac::parse(&s),
                    Some(sitetally_core::identity::Mac(0x001b_1b00_0a0f)),
                    "{s}"
                );
            }
        }
    }
}
