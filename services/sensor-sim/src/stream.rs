//! The event stream driver: walks the schedule below and, for each device due, emits a
//! valid report or, now and then, a malformed message or a report about something that
//! is not a device, recording each in the ground truth as it leaves. Reports are built
//! in [`crate::report`], encoded in [`crate::encode`] and broken in [`crate::malformed`].
//!
//! Schedule: each simulated day has `reports_per_device + growth_rounds` rounds; in
//! every round each device due that day is reported once, by the next of its sensors,
//! in a freshly shuffled order across all sites. A device is due in `reports_per_device`
//! consecutive rounds per day (from its birth round on its birth day), so every device
//! is reported at least that many times by at least two sensors. Round `r` of a day
//! has timestamps in the `r`-th slice of that day's window: the whole UTC day for past
//! days, the last `recent_window_ms` before `now_ms` (within its UTC day) for the last.

use crate::encode::{Encoder, Encoding};
use crate::malformed::{self, MalformedKind};
use crate::report::{self, RoundPosition};
use crate::truth::{GroundTruth, TruthRecorder};
use crate::world::World;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sitetally_core::MS_PER_DAY;
use std::sync::Arc;

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
    encoder: Encoder,
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
        let truth = TruthRecorder::new(&world);
        let mut s = EventStream {
            rng: StdRng::seed_from_u64(world.config.seed ^ 0x5157_4e53_494d_0001),
            now_ms,
            encoder: Encoder::bundled(),
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

    /// Where in the schedule the stream is (for [`report::report`]).
    pub(crate) fn round_position(&self) -> RoundPosition {
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
        let report = report::report(&self.world, &mut self.rng, at, idx);
        let payload = self.encoder.encode(&report, enc, json_style);
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
        let report = report::not_a_device(&self.world, &mut self.rng, at, idx);
        let payload = self.encoder.encode(&report, enc, json_style);
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
        let json_style = self.rng.gen_range(0..10u8);
        let at = self.round_position();
        let report = report::report(&self.world, &mut self.rng, at, idx);
        let (payload, reason) = malformed::payload(
            kind,
            report,
            avro,
            json_style,
            self.now_ms,
            &mut self.rng,
            &self.encoder,
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SimConfig;
    use crate::testing::{config, stream, NOW};
    use sitetally_core::codec::Codec;
    use sitetally_core::identity::{identify, Identified};
    use sitetally_core::DeviceCategory;
    use std::collections::{BTreeMap, HashMap, HashSet};

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
}
