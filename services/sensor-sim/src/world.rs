//! The simulated world: tenants with OT sites and Enterprise IoT fleets, each site's
//! sensors, zones and devices, built deterministically from [`SimConfig::seed`]. The
//! names and vendors come from the `catalog`, the settings from [`crate::config`].
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

use crate::catalog::{vendors, IOT_SITE_PREFIXES, OT_SITE_PREFIXES, TENANTS, ZONES};
use crate::config::{SimConfig, SizeProfile};
use crate::licence::{bucket_of, Licence, TIERS};
use crate::SimError;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sitetally_core::DeviceCategory;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

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
}
