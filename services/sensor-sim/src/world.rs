//! The simulated world: tenants with OT sites and Enterprise IoT fleets, each site's
//! sensors, zones and devices, built deterministically from [`SimConfig::seed`].
//!
//! Everything random is drawn here, once, from one seeded generator, so the same
//! configuration always yields the same world (and, with the same `now_ms`, the same
//! byte stream; see [`crate::stream`]).
//!
//! Identity choices the ground truth relies on (they mirror `sitetally_core::identity`):
//! MACs are unique across the whole world (one counter per vendor OUI) and always
//! unicast; each IP-only device has a private address unique within its zone and is
//! always reported with that zone; devices are never identified by a sensor-assigned id
//! alone (those are per sensor, so the same device would count once per sensor).

use crate::SimError;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sitetally_core::DeviceCategory;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Published OT site tiers and the devices each covers (S and M are the usual figures;
/// 2XL/3XL are unpublished, so sites above 5,000 are licensed with stacked XL).
pub const TIERS: [(&str, u32); 5] = [
    ("XS", 100),
    ("S", 250),
    ("M", 500),
    ("L", 1_000),
    ("XL", 5_000),
];

/// The OT licence a site holds in the simulation: `count` licences of `tier`, covering
/// `capacity` devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    /// Tier name as the reconciler spells it: XS, S, M, L, XL.
    pub tier: String,
    /// How many licences of that tier (above 1 only for stacked XL).
    pub count: u32,
    /// Devices covered.
    pub capacity: u32,
}

impl Licence {
    /// The smallest licence covering `devices`: the smallest tier whose size covers the
    /// count, or stacked XL above 5,000.
    pub fn for_devices(devices: u32) -> Licence {
        match TIERS.iter().find(|(_, max)| devices <= *max) {
            Some((tier, max)) => Licence {
                tier: (*tier).to_string(),
                count: 1,
                capacity: *max,
            },
            None => {
                let count = devices.div_ceil(5_000);
                Licence {
                    tier: "XL".into(),
                    count,
                    capacity: count * 5_000,
                }
            }
        }
    }
}

/// How big the sites are (final device counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SizeProfile {
    /// Mostly small sites, a few large: one site of every tier size (XS, S, M, L, XL and
    /// above 5,000) as far as `min..=max` and the site count allow, the smallest exactly
    /// `min` and the largest exactly `max`; the rest drawn 62% XS, 15% S, 10% M, 7% L,
    /// 5% XL, 1% above 5,000.
    Realistic { min: u32, max: u32 },
    /// Site `i` has `sizes[i % sizes.len()]` devices (a growing site's size is raised
    /// when needed so it ends at least 10% past its licence).
    Explicit(Vec<u32>),
}

impl Default for SizeProfile {
    fn default() -> Self {
        SizeProfile::Realistic {
            min: 5,
            max: 20_000,
        }
    }
}

/// Everything that shapes the simulated world and its traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of every random choice; same seed, same world, same bytes.
    pub seed: u64,
    /// Number of sites (over all tenants).
    pub sites: usize,
    /// Site sizes (device counts at the end of the simulated period).
    pub sizes: SizeProfile,
    /// Fewest sensors per site (at least 2: every device is reported by two sensors).
    pub min_sensors_per_site: u32,
    /// Most sensors per site (large sites get more).
    pub max_sensors_per_site: u32,
    /// Most network zones per site (a site gets one zone per ~300 devices up to this).
    pub max_zones_per_site: u32,
    /// Reports per device per simulated day (at least 2), each round by another sensor.
    pub reports_per_device: u32,
    /// Simulated days, the last one being the UTC day of `now_ms` (1..=59, within the
    /// default 60-day maximum event age).
    pub days: u16,
    /// OT sites that grow over the simulated period past their licensed tier.
    pub grow_sites: usize,
    /// Extra report rounds per day in which growing sites' new devices appear.
    pub growth_rounds: u32,
    /// Share of sites that are Enterprise IoT fleets rather than OT sites.
    pub enterprise_iot_fraction: f64,
    /// Share of devices seen only at layer 3 (private IP, no MAC).
    pub ip_only_fraction: f64,
    /// Share of messages encoded as Avro (the rest JSON).
    pub avro_fraction: f64,
    /// Share of messages that are malformed (varied kinds).
    pub malformed_fraction: f64,
    /// Share of messages that are valid reports about something that is not a device.
    pub not_a_device_fraction: f64,
    /// The last day's events fall within this many milliseconds before `now_ms`.
    pub recent_window_ms: i64,
    /// After the planned schedule, keep producing repeat reports (truth unchanged).
    pub endless: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            sites: 20,
            sizes: SizeProfile::default(),
            min_sensors_per_site: 2,
            max_sensors_per_site: 6,
            max_zones_per_site: 8,
            reports_per_device: 3,
            days: 1,
            grow_sites: 2,
            growth_rounds: 2,
            enterprise_iot_fraction: 0.2,
            ip_only_fraction: 0.05,
            avro_fraction: 0.5,
            malformed_fraction: 0.01,
            not_a_device_fraction: 0.005,
            recent_window_ms: 3 * 3_600_000,
            endless: false,
        }
    }
}

impl SimConfig {
    /// Defaults with `seed` and `sites`, growing one site in ten (at least one).
    pub fn new(seed: u64, sites: usize) -> Self {
        Self {
            seed,
            sites,
            grow_sites: (sites / 10).max(1),
            ..Self::default()
        }
    }

    /// Checks every setting, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field: &'static str, reason: &str| {
            Err(SimError::Config {
                field,
                reason: reason.to_string(),
            })
        };
        let fraction = |v: f64| (0.0..=1.0).contains(&v);
        if self.sites == 0 {
            return bad("sites", "must be at least 1");
        }
        match &self.sizes {
            SizeProfile::Realistic { min, max } if *min == 0 || min > max => {
                return bad("sizes", "need 1 <= min <= max");
            }
            SizeProfile::Explicit(v) if v.is_empty() || v.contains(&0) => {
                return bad("sizes", "need at least one size, all above 0");
            }
            _ => {}
        }
        if self.min_sensors_per_site < 2 || self.max_sensors_per_site < self.min_sensors_per_site {
            return bad(
                "sensors_per_site",
                "need 2 <= min_sensors_per_site <= max_sensors_per_site",
            );
        }
        if self.max_sensors_per_site > 1_000 || self.max_zones_per_site == 0 {
            return bad(
                "sensors_per_site",
                "at most 1000 sensors and at least 1 zone",
            );
        }
        if self.max_zones_per_site > 250 {
            return bad("max_zones_per_site", "at most 250");
        }
        if !(2..=100).contains(&self.reports_per_device) {
            return bad("reports_per_device", "must be within 2..=100");
        }
        if !(1..=59).contains(&self.days) {
            return bad(
                "days",
                "must be within 1..=59 (events older than 60 days are rejected)",
            );
        }
        if self.growth_rounds > 20 {
            return bad("growth_rounds", "at most 20");
        }
        for (field, v) in [
            ("enterprise_iot_fraction", self.enterprise_iot_fraction),
            ("ip_only_fraction", self.ip_only_fraction),
            ("avro_fraction", self.avro_fraction),
            ("malformed_fraction", self.malformed_fraction),
            ("not_a_device_fraction", self.not_a_device_fraction),
        ] {
            if !fraction(v) {
                return bad(field, "must be within 0..=1");
            }
        }
        if self.malformed_fraction + self.not_a_device_fraction >= 0.9 {
            return bad(
                "malformed_fraction",
                "malformed plus not-a-device fractions must stay below 0.9",
            );
        }
        if !(60_000..=86_400_000).contains(&self.recent_window_ms) {
            return bad("recent_window_ms", "must be between one minute and one day");
        }
        Ok(())
    }

    /// Report rounds per simulated day.
    pub fn rounds_per_day(&self) -> u32 {
        self.reports_per_device + self.growth_rounds
    }
}

/// OT site or Enterprise IoT fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    Ot,
    EnterpriseIot,
}

/// How a growing site grows: from `initial_devices` (70–95% of its licence) on the first
/// day's first round to `final_devices` (at least 10% past it), new devices appearing in
/// every later round of every simulated day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Growth {
    pub initial_devices: u32,
    pub final_devices: u32,
}

/// One site: a tenant's location with its own sensors, zones and devices.
#[derive(Debug, Clone)]
pub struct Site {
    pub tenant: String,
    pub name: String,
    /// Kafka message key, `tenant/site`.
    pub key: Vec<u8>,
    pub kind: SiteKind,
    pub sensors: Vec<String>,
    pub zones: Vec<String>,
    /// OT licence held (the one covering the final count, or for growing sites the one
    /// covering the initial count). `None` for Enterprise IoT fleets.
    pub licence: Option<Licence>,
    pub growth: Option<Growth>,
    /// This site's devices in [`World::devices`].
    pub devices: Range<usize>,
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Index into [`World::sites`].
    pub site: u32,
    pub category: DeviceCategory,
    /// Index into the site's zones.
    pub zone: u16,
    /// NIC MACs as 48-bit values (empty for IP-only devices).
    pub macs: Vec<u64>,
    /// Private addresses, unique within the zone.
    pub ips: Vec<IpAddr>,
    pub vendor: &'static str,
    pub model: &'static str,
    pub firmware: &'static str,
    pub protocols: &'static [&'static str],
    pub hostname: Option<String>,
    pub agent_managed: bool,
    /// Indices of the site's sensors that see this device (2 or 3, distinct); report
    /// `k` of a day comes from `sensors[k % len]`.
    pub sensors: Vec<u16>,
    /// Simulated day (0-based) on which the device first appears.
    pub birth_day: u16,
    /// Round of that day from which it is reported.
    pub birth_round: u32,
}

impl Device {
    /// Whether the device is reported in round `round` of simulated day `day`.
    pub fn reported_in(&self, day: u16, round: u32, reports: u32) -> bool {
        match day.cmp(&self.birth_day) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Greater => round < reports,
            std::cmp::Ordering::Equal => {
                round >= self.birth_round && round < self.birth_round + reports
            }
        }
    }

    /// Which report of the day (0-based) round `round` is for this device.
    pub fn report_index(&self, day: u16, round: u32) -> u32 {
        if day == self.birth_day {
            round.saturating_sub(self.birth_round)
        } else {
            round
        }
    }
}

/// A site that grows past its licensed tier, for tests and the demo's "over tier" check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrownSite {
    pub tenant: String,
    pub site: String,
    pub licence: Licence,
    pub initial_devices: u32,
    pub final_devices: u32,
}

/// The whole simulated world.
#[derive(Debug, Clone)]
pub struct World {
    pub config: SimConfig,
    pub sites: Vec<Site>,
    pub devices: Vec<Device>,
}

struct VendorModel {
    vendor: &'static str,
    oui: u32,
    models: &'static [&'static str],
    firmware: &'static [&'static str],
    protocols: &'static [&'static str],
}

const fn vm(
    vendor: &'static str,
    oui: u32,
    models: &'static [&'static str],
    firmware: &'static [&'static str],
    protocols: &'static [&'static str],
) -> VendorModel {
    VendorModel {
        vendor,
        oui,
        models,
        firmware,
        protocols,
    }
}

// OUIs are plausible, unicast, and each appears once (one MAC counter per OUI keeps
// every MAC in the world unique).
const OT_VENDORS: &[VendorModel] = &[
    vm(
        "Siemens",
        0x001B1B,
        &["SIMATIC S7-1500", "SIMATIC ET 200SP", "SCALANCE X208"],
        &["V2.9.4", "V3.0.1"],
        &["S7", "PROFINET"],
    ),
    vm(
        "Rockwell Automation",
        0x0000BC,
        &["ControlLogix 5580", "CompactLogix 5380", "PowerFlex 525"],
        &["33.011", "34.014"],
        &["CIP", "EtherNet/IP"],
    ),
    vm(
        "Schneider Electric",
        0x0080F4,
        &["Modicon M580", "Modicon M340", "PowerLogic PM8000"],
        &["3.20", "4.01"],
        &["Modbus/TCP"],
    ),
    vm(
        "ABB",
        0x000C01,
        &["AC500 PM5630", "Relion REF615"],
        &["2.8.1"],
        &["IEC 61850", "Modbus/TCP"],
    ),
    vm(
        "Honeywell",
        0x0040AB,
        &["Experion C300", "ControlEdge PLC"],
        &["R511.2"],
        &["CDA", "Modbus/TCP"],
    ),
    vm(
        "Mitsubishi Electric",
        0x0026A5,
        &["MELSEC iQ-R", "MELSEC FX5U"],
        &["1.270"],
        &["SLMP"],
    ),
];
const IOT_VENDORS: &[VendorModel] = &[
    vm(
        "Axis Communications",
        0x00408C,
        &["P3245-LVE", "M3106-L Mk II"],
        &["10.12.182"],
        &["RTSP", "ONVIF"],
    ),
    vm(
        "Hikvision",
        0x4419B6,
        &["DS-2CD2143G2-I"],
        &["V5.7.3"],
        &["RTSP"],
    ),
    vm(
        "Philips Lighting",
        0x001788,
        &["Hue Bridge", "Dynalite DDNG485"],
        &["1.59"],
        &["Zigbee"],
    ),
    vm(
        "Zebra Technologies",
        0x00A0F8,
        &["ZT411", "ZD621"],
        &["V92.21"],
        &["ZPL", "SNMP"],
    ),
    vm(
        "GE Healthcare",
        0x00000E,
        &["CARESCAPE B650", "Vivid E95"],
        &["3.2"],
        &["HL7", "DICOM"],
    ),
    vm(
        "Johnson Controls",
        0x0010A7,
        &["Metasys NAE55"],
        &["11.0"],
        &["BACnet/IP"],
    ),
];
const NETWORK_VENDORS: &[VendorModel] = &[
    vm(
        "Cisco",
        0x001AA1,
        &["Catalyst 9300", "IE-4000", "ISR 4331"],
        &["17.9.4"],
        &["SNMP", "CDP"],
    ),
    vm(
        "Hirschmann",
        0x008063,
        &["RSP35", "MACH4000"],
        &["9.1.05"],
        &["SNMP", "LLDP"],
    ),
    vm(
        "Juniper Networks",
        0x000585,
        &["EX4300", "SRX345"],
        &["21.4R3"],
        &["SNMP", "LLDP"],
    ),
    vm(
        "Aruba",
        0x000B86,
        &["AP-515", "CX 6300"],
        &["10.11"],
        &["LLDP"],
    ),
];
const COMPUTER_VENDORS: &[VendorModel] = &[
    vm(
        "Dell",
        0x14FEB5,
        &["OptiPlex 7090", "Latitude 5440", "PowerEdge R650"],
        &["1.18.0"],
        &["SMB", "RDP"],
    ),
    vm(
        "HP",
        0x3CD92B,
        &["EliteBook 840", "Z4 G5"],
        &["01.13"],
        &["SMB"],
    ),
    vm(
        "Apple",
        0xF01898,
        &["iPhone 15", "MacBook Pro", "iPad Air"],
        &["17.4"],
        &["mDNS"],
    ),
    vm(
        "Lenovo",
        0x54EE75,
        &["ThinkPad T14", "ThinkCentre M90q"],
        &["1.41"],
        &["SMB", "RDP"],
    ),
    vm(
        "Samsung",
        0x8425DB,
        &["Galaxy S23", "Galaxy Tab S9"],
        &["14"],
        &["mDNS"],
    ),
];
const UNKNOWN_VENDORS: &[VendorModel] = &[vm("", 0x02A0B0, &[""], &[""], &[])];

fn vendors(category: DeviceCategory) -> &'static [VendorModel] {
    match category {
        DeviceCategory::Ot => OT_VENDORS,
        DeviceCategory::Iot => IOT_VENDORS,
        DeviceCategory::Network => NETWORK_VENDORS,
        DeviceCategory::ComputersMobile => COMPUTER_VENDORS,
        DeviceCategory::Unknown => UNKNOWN_VENDORS,
    }
}

const TENANTS: &[&str] = &[
    "acme-energy",
    "borealis-pharma",
    "cobalt-water",
    "delta-foods",
    "evergreen-health",
    "fjord-shipping",
    "granite-mining",
    "helios-chemicals",
    "ironbridge-auto",
    "juniper-retail",
];
const OT_SITE_PREFIXES: &[&str] = &["plant", "substation", "refinery", "mill", "rig", "depot"];
const IOT_SITE_PREFIXES: &[&str] = &["campus", "hospital", "office", "warehouse"];
const ZONES: &[&str] = &[
    "scada",
    "plc-ring",
    "cell-a",
    "cell-b",
    "hvac",
    "office-lan",
    "dmz",
    "wifi",
    "lab",
    "packaging",
];

/// Draws one site size for a tier bucket (0 = XS … 4 = XL, 5 = above 5,000) within
/// `min..=max`; `None` when the bucket and the range do not meet.
fn draw_in_bucket(rng: &mut StdRng, bucket: usize, min: u32, max: u32) -> Option<u32> {
    let (lo, hi) = match bucket {
        0 => (1, 100),
        1 => (101, 250),
        2 => (251, 500),
        3 => (501, 1_000),
        4 => (1_001, 5_000),
        _ => (5_001, u32::MAX),
    };
    let (lo, hi) = (lo.max(min), hi.min(max));
    (lo <= hi).then(|| rng.gen_range(lo..=hi))
}

/// Tier bucket of a size: 0 = XS … 4 = XL, 5 = above 5,000.
fn bucket_of(size: u32) -> usize {
    TIERS.iter().position(|(_, max)| size <= *max).unwrap_or(5)
}

fn site_sizes(config: &SimConfig, rng: &mut StdRng) -> Vec<u32> {
    let (min, max) = match &config.sizes {
        SizeProfile::Explicit(sizes) => {
            return (0..config.sites).map(|i| sizes[i % sizes.len()]).collect();
        }
        SizeProfile::Realistic { min, max } => (*min, *max),
    };
    // One site per tier bucket that the range reaches, the extremes exact.
    let mut sizes: Vec<u32> = (0..6)
        .filter_map(|b| draw_in_bucket(rng, b, min, max))
        .collect();
    if let Some(first) = sizes.first_mut() {
        *first = min;
    }
    if let Some(last) = sizes.last_mut() {
        *last = max;
    }
    sizes.dedup();
    // With fewer sites than buckets keep the extremes and the middle of the range.
    while sizes.len() > config.sites {
        if sizes.len() > 2 {
            sizes.remove(sizes.len() / 2);
        } else {
            sizes.pop();
        }
    }
    const WEIGHTS: [u32; 6] = [62, 15, 10, 7, 5, 1];
    while sizes.len() < config.sites {
        let mut pick = rng.gen_range(0..100);
        let bucket = WEIGHTS
            .iter()
            .position(|w| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .unwrap_or(0);
        if let Some(size) = draw_in_bucket(rng, bucket, min, max) {
            sizes.push(size);
        }
    }
    sizes.shuffle(rng);
    sizes
}

fn pick_category(rng: &mut StdRng, kind: SiteKind) -> DeviceCategory {
    use DeviceCategory::*;
    let table: &[(DeviceCategory, u32)] = match kind {
        SiteKind::Ot => &[
            (Ot, 60),
            (Network, 10),
            (ComputersMobile, 15),
            (Iot, 10),
            (Unknown, 5),
        ],
        SiteKind::EnterpriseIot => &[
            (Iot, 55),
            (ComputersMobile, 25),
            (Network, 10),
            (Unknown, 5),
            (Ot, 5),
        ],
    };
    let mut pick = rng.gen_range(0..100);
    for (c, w) in table {
        if pick < *w {
            return *c;
        }
        pick -= w;
    }
    Unknown
}

/// Allocates private addresses unique within a zone of a site.
struct IpAllocator {
    next: Vec<u32>,
}

impl IpAllocator {
    fn next(&mut self, site: usize, zone: usize, v6: bool) -> IpAddr {
        let c = self.next[zone];
        self.next[zone] += 1;
        if v6 {
            let s = site as u16;
            return IpAddr::V6(Ipv6Addr::new(
                0xfd00,
                s,
                zone as u16,
                0,
                0,
                0,
                (c >> 16) as u16,
                c as u16,
            ));
        }
        // 10.Z.x.y for even zones, 172.16-31.x.y for odd ones; 65k hosts per zone.
        let (a, b) = if zone.is_multiple_of(2) {
            (10, zone as u8)
        } else {
            (172, 16 + (zone % 16) as u8)
        };
        IpAddr::V4(Ipv4Addr::new(a, b, (c >> 8) as u8, c as u8))
    }
}

impl World {
    /// Builds the world described by `config` (validated first).
    pub fn new(config: SimConfig) -> Result<World, SimError> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut sizes = site_sizes(&config, &mut rng);
        let n_tenants = config.sites.div_ceil(5).max(1);
        let tenants: Vec<String> = (0..n_tenants)
            .map(|t| match (TENANTS.get(t), t / TENANTS.len()) {
                (Some(name), _) => (*name).to_string(),
                (None, round) => format!("{}-{round}", TENANTS[t % TENANTS.len()]),
            })
            .collect();

        // Kinds: the largest site of each tier bucket stays OT so every tier is covered.
        let mut kinds = vec![SiteKind::Ot; config.sites];
        for (i, kind) in kinds.iter_mut().enumerate() {
            if rng.gen_bool(config.enterprise_iot_fraction) && sizes[i] <= 5_000 {
                *kind = SiteKind::EnterpriseIot;
            }
        }
        for bucket in 0..6 {
            let in_bucket = |i: &usize| bucket_of(sizes[*i]) == bucket;
            if !(0..config.sites)
                .filter(in_bucket)
                .any(|i| kinds[i] == SiteKind::Ot)
            {
                if let Some(i) = (0..config.sites).find(in_bucket) {
                    kinds[i] = SiteKind::Ot;
                }
            }
        }

        // Growing sites: OT sites up to 5,000 devices. A growing site's licence is one
        // tier below the tier its final count needs; it starts at 70–100% of it.
        let mut candidates: Vec<usize> = (0..config.sites)
            .filter(|&i| kinds[i] == SiteKind::Ot && sizes[i] <= 5_000)
            .collect();
        candidates.shuffle(&mut rng);
        let mut growth: Vec<Option<(Licence, Growth)>> = vec![None; config.sites];
        for &i in candidates.iter().take(config.grow_sites) {
            let mut final_devices = sizes[i];
            let mut needed = bucket_of(final_devices);
            if needed == 0 {
                final_devices = rng.gen_range(101..=140);
                needed = 1;
            }
            let (tier, cap) = TIERS[needed - 1];
            // Grow by at least 10% of the licence and at least one device per birth slot,
            // so the count rises every simulated day.
            let slots = config.days as u32 * (config.growth_rounds + 1) - 1;
            final_devices = final_devices.max(cap + (cap / 10).max(slots) + 1);
            let initial = rng.gen_range(cap * 7 / 10..=cap * 95 / 100);
            sizes[i] = final_devices;
            growth[i] = Some((
                Licence {
                    tier: tier.to_string(),
                    count: 1,
                    capacity: cap,
                },
                Growth {
                    initial_devices: initial,
                    final_devices,
                },
            ));
        }

        let mut ips = IpAllocator { next: Vec::new() };
        let mut mac_counters: std::collections::HashMap<u32, u32> = Default::default();
        let mut sites = Vec::with_capacity(config.sites);
        let mut devices = Vec::with_capacity(sizes.iter().map(|&s| s as usize).sum());
        for (i, &size) in sizes.iter().enumerate() {
            let kind = kinds[i];
            let tenant = tenants[i % n_tenants].clone();
            let prefixes = match kind {
                SiteKind::Ot => OT_SITE_PREFIXES,
                SiteKind::EnterpriseIot => IOT_SITE_PREFIXES,
            };
            let name = format!("{}-{:03}", prefixes[i % prefixes.len()], i + 1);
            let key = format!("{tenant}/{name}").into_bytes();
            let n_sensors = (config.min_sensors_per_site + size / 2_000)
                .min(config.max_sensors_per_site)
                .max(config.min_sensors_per_site);
            let sensors: Vec<String> = (0..n_sensors)
                .map(|s| format!("sns-{:03}-{:02}", i + 1, s + 1))
                .collect();
            let n_zones = (1 + size / 300).min(config.max_zones_per_site) as usize;
            let zones: Vec<String> = (0..n_zones)
                .map(|z| match z / ZONES.len() {
                    0 => ZONES[z].to_string(),
                    r => format!("{}-{r}", ZONES[z % ZONES.len()]),
                })
                .collect();
            ips.next = vec![1; n_zones];
            let (licence, grow) = match (&growth[i], kind) {
                (Some((licence, g)), _) => (Some(licence.clone()), Some(*g)),
                (None, SiteKind::Ot) => (Some(Licence::for_devices(size)), None),
                (None, SiteKind::EnterpriseIot) => (None, None),
            };
            let start = devices.len();
            // Birth slots of a growing site's extra devices: every (day, round) after the
            // first day's first round, evenly.
            let slots: Vec<(u16, u32)> = (0..config.days)
                .flat_map(|d| (0..=config.growth_rounds).map(move |r| (d, r)))
                .skip(1)
                .collect();
            for j in 0..size {
                let (birth_day, birth_round) = match grow {
                    Some(g) if j >= g.initial_devices && !slots.is_empty() => {
                        let extra = (g.final_devices - g.initial_devices) as usize;
                        slots[(j - g.initial_devices) as usize * slots.len() / extra]
                    }
                    _ => (0, 0),
                };
                let category = pick_category(&mut rng, kind);
                let table = vendors(category);
                let v = &table[rng.gen_range(0..table.len())];
                let zone = rng.gen_range(0..n_zones);
                let ip_only = matches!(category, DeviceCategory::Ot | DeviceCategory::Unknown)
                    && rng.gen_bool((config.ip_only_fraction * 2.0).min(1.0));
                let (macs, dev_ips) = if ip_only {
                    let mut a = vec![ips.next(i, zone, rng.gen_bool(0.1))];
                    if rng.gen_bool(0.1) {
                        a.push(ips.next(i, zone, true));
                    }
                    (Vec::new(), a)
                } else {
                    let nics = match (category, rng.gen_range(0..100)) {
                        (DeviceCategory::Network, p) if p < 40 => 3,
                        (_, p) if p < 80 => 1,
                        (_, p) if p < 95 => 2,
                        _ => 3,
                    };
                    let counter = mac_counters.entry(v.oui).or_insert(1);
                    let macs: Vec<u64> = (0..nics)
                        .map(|k| ((v.oui as u64) << 24) | ((*counter + k) as u64 & 0xff_ffff))
                        .collect();
                    *counter += nics;
                    let n_ips = if rng.gen_bool(0.5) { nics } else { 1 };
                    let a = (0..n_ips).map(|_| ips.next(i, zone, false)).collect();
                    (macs, a)
                };
                let hostname = match category {
                    DeviceCategory::ComputersMobile => Some(format!("ws-{:03}-{j:05}", i + 1)),
                    DeviceCategory::Network => Some(format!("sw-{:03}-{j:04}", i + 1)),
                    _ if rng.gen_bool(0.2) => Some(format!("dev-{:03}-{j:05}", i + 1)),
                    _ => None,
                };
                let mut seen_by: Vec<u16> = (0..n_sensors as u16).collect();
                seen_by.shuffle(&mut rng);
                seen_by.truncate(if n_sensors > 2 && rng.gen_bool(0.3) {
                    3
                } else {
                    2
                });
                devices.push(Device {
                    site: i as u32,
                    category,
                    zone: zone as u16,
                    macs,
                    ips: dev_ips,
                    vendor: v.vendor,
                    model: v.models[rng.gen_range(0..v.models.len())],
                    firmware: v.firmware[rng.gen_range(0..v.firmware.len())],
                    protocols: v.protocols,
                    hostname,
                    agent_managed: category == DeviceCategory::ComputersMobile && rng.gen_bool(0.4),
                    sensors: seen_by,
                    birth_day,
                    birth_round,
                });
            }
            sites.push(Site {
                tenant,
                name,
                key,
                kind,
                sensors,
                zones,
                licence,
                growth: grow,
                devices: start..devices.len(),
            });
        }
        Ok(World {
            config,
            sites,
            devices,
        })
    }

    /// The sites that grow past their licence, with that licence.
    pub fn grown_sites(&self) -> Vec<GrownSite> {
        self.sites
            .iter()
            .filter_map(|s| {
                let g = s.growth?;
                Some(GrownSite {
                    tenant: s.tenant.clone(),
                    site: s.name.clone(),
                    licence: s.licence.clone()?,
                    initial_devices: g.initial_devices,
                    final_devices: g.final_devices,
                })
            })
            .collect()
    }

    /// Valid device reports in the planned schedule (without malformed and
    /// not-a-device messages, and without endless repeats).
    pub fn planned_reports(&self) -> u64 {
        let days = self.config.days as u64;
        let per_day = self.config.reports_per_device as u64;
        self.devices
            .iter()
            .map(|d| (days - d.birth_day as u64) * per_day)
            .sum()
    }

    /// Messages of any kind in the planned schedule (expected value).
    pub fn planned_messages(&self) -> u64 {
        let special = self.config.malformed_fraction + self.config.not_a_device_fraction;
        (self.planned_reports() as f64 / (1.0 - special)).round() as u64
    }

    /// Site by tenant and name.
    pub fn site(&self, tenant: &str, site: &str) -> Option<&Site> {
        self.sites
            .iter()
            .find(|s| s.tenant == tenant && s.name == site)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licences_pick_the_smallest_covering_tier() {
        assert_eq!(Licence::for_devices(100).tier, "XS");
        assert_eq!(Licence::for_devices(101).tier, "S");
        assert_eq!(Licence::for_devices(1_000).tier, "L");
        let big = Licence::for_devices(12_000);
        assert_eq!(
            (big.tier.as_str(), big.count, big.capacity),
            ("XL", 3, 15_000)
        );
    }

    #[test]
    fn realistic_sizes_cover_every_tier_and_the_extremes() {
        let w = World::new(SimConfig::new(3, 100)).unwrap();
        let sizes: Vec<u32> = w.sites.iter().map(|s| s.devices.len() as u32).collect();
        assert_eq!(*sizes.iter().min().unwrap(), 5);
        assert_eq!(*sizes.iter().max().unwrap(), 20_000);
        let ot_tiers: std::collections::BTreeSet<usize> = w
            .sites
            .iter()
            .filter(|s| s.kind == SiteKind::Ot)
            .map(|s| bucket_of(s.devices.len() as u32))
            .collect();
        assert_eq!(ot_tiers.len(), 6, "{ot_tiers:?}");
        let small = sizes.iter().filter(|&&s| s <= 250).count();
        assert!(small > 60, "mostly small sites: {small}");
        assert!(w.sites.iter().any(|s| s.kind == SiteKind::EnterpriseIot));
        assert_eq!(w.grown_sites().len(), 10);
    }

    #[test]
    fn grown_sites_end_past_their_licence() {
        let mut c = SimConfig::new(9, 12);
        c.days = 4;
        c.grow_sites = 3;
        let w = World::new(c).unwrap();
        let grown = w.grown_sites();
        assert_eq!(grown.len(), 3);
        for g in grown {
            assert!(g.initial_devices <= g.licence.capacity);
            assert!(g.final_devices > g.licence.capacity);
            let site = w.site(&g.tenant, &g.site).unwrap();
            assert_eq!(site.devices.len() as u32, g.final_devices);
            let day0 = w.devices[site.devices.clone()]
                .iter()
                .filter(|d| d.birth_day == 0 && d.birth_round == 0)
                .count();
            assert_eq!(day0 as u32, g.initial_devices);
            let last = w.devices[site.devices.clone()]
                .iter()
                .map(|d| d.birth_day)
                .max()
                .unwrap();
            assert_eq!(last, 3, "growth continues to the last day");
        }
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let c = SimConfig {
            reports_per_device: 1,
            ..SimConfig::default()
        };
        match World::new(c) {
            Err(SimError::Config { field, .. }) => assert_eq!(field, "reports_per_device"),
            other => panic!("{other:?}"),
        }
    }
}
