//! Ground truth: what the simulator actually emitted, counted exactly under the identity
//! rules, for tests and the demo to compare sitetally's counts against.
//!
//! The truth is recorded as messages leave the stream, so a run cut short (duration,
//! event limit, Ctrl-C) still has an exact truth for what it sent.

use crate::licence::Licence;
use crate::malformed::MalformedKind;
use crate::world::{SiteKind, World};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Exact counts for one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteTruth {
    pub tenant: String,
    pub site: String,
    pub kind: SiteKind,
    /// Distinct devices reported over the whole run.
    pub devices: u64,
    /// Distinct devices by sensor category (`OT`, `IOT`, `NETWORK`, `COMPUTERS_MOBILE`,
    /// `UNKNOWN`).
    pub by_category: BTreeMap<String, u64>,
    /// Distinct devices by UTC day (days since 1970-01-01, as `sitetally_core::day_of`).
    pub by_day: BTreeMap<u16, u64>,
    /// Devices the world holds for this site (what a complete run reports).
    pub planned_devices: u64,
    /// OT licence the site holds (`None` for Enterprise IoT fleets).
    pub licence: Option<Licence>,
    /// The simulator grew this site past its licence.
    pub grown: bool,
    /// More devices reported than the licence covers.
    pub over_tier: bool,
}

/// Exact truth of one simulator run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub seed: u64,
    /// The `now_ms` the stream's timestamps were generated against.
    pub now_ms: i64,
    /// Messages emitted, of every kind.
    pub messages: u64,
    /// Valid device reports.
    pub valid: u64,
    /// Valid reports about things that are not devices (public IPs, multicast,
    /// broadcast): must not be counted, must not be dead-lettered.
    pub not_a_device: u64,
    /// Malformed messages by kind (see [`MalformedKind::as_str`]).
    pub malformed: BTreeMap<String, u64>,
    /// Malformed messages by the rejection reason sitetally should give them.
    pub malformed_by_reason: BTreeMap<String, u64>,
    /// Per site, in world order.
    pub sites: Vec<SiteTruth>,
}

impl GroundTruth {
    /// Truth for one site.
    pub fn site(&self, tenant: &str, site: &str) -> Option<&SiteTruth> {
        self.sites
            .iter()
            .find(|s| s.tenant == tenant && s.site == site)
    }

    /// All malformed messages.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    /// Distinct devices over all sites (a device is counted once per site it is at).
    pub fn total_devices(&self) -> u64 {
        self.sites.iter().map(|s| s.devices).sum()
    }

    /// Writes the truth as pretty JSON.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// Reads a truth file written by [`GroundTruth::write_json`].
    pub fn read_json(path: &Path) -> std::io::Result<GroundTruth> {
        let bytes = std::fs::read(path)?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}

/// Records emitted messages; cheap per message (two array updates per valid report).
#[derive(Debug, Clone)]
pub(crate) struct TruthRecorder {
    /// Per device: last UTC day it was reported on, `u16::MAX` if never.
    last_day: Vec<u16>,
    sites: Vec<SiteCounts>,
    messages: u64,
    valid: u64,
    not_a_device: u64,
    malformed: BTreeMap<MalformedKind, u64>,
    malformed_by_reason: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Default)]
struct SiteCounts {
    devices: u64,
    by_category: [u64; 5],
    by_day: BTreeMap<u16, u64>,
}

impl TruthRecorder {
    pub(crate) fn new(world: &World) -> Self {
        Self {
            last_day: vec![u16::MAX; world.devices.len()],
            sites: vec![SiteCounts::default(); world.sites.len()],
            messages: 0,
            valid: 0,
            not_a_device: 0,
            malformed: BTreeMap::new(),
            malformed_by_reason: BTreeMap::new(),
        }
    }

    /// A valid report of `device` observed on UTC `day`. Days never go backwards in the
    /// stream, so "last day" is enough to count distinct devices per day.
    pub(crate) fn valid(&mut self, world: &World, device: usize, day: u16) {
        self.messages += 1;
        self.valid += 1;
        let last = self.last_day[device];
        if last == day {
            return;
        }
        let d = &world.devices[device];
        let site = &mut self.sites[d.site as usize];
        if last == u16::MAX {
            site.devices += 1;
            site.by_category[d.category.code() as usize] += 1;
        }
        *site.by_day.entry(day).or_default() += 1;
        self.last_day[device] = day;
    }

    pub(crate) fn not_a_device(&mut self) {
        self.messages += 1;
        self.not_a_device += 1;
    }

    pub(crate) fn malformed(&mut self, kind: MalformedKind, reason: &'static str) {
        self.messages += 1;
        *self.malformed.entry(kind).or_default() += 1;
        *self.malformed_by_reason.entry(reason).or_default() += 1;
    }

    pub(crate) fn snapshot(&self, world: &World, now_ms: i64) -> GroundTruth {
        let sites = world
            .sites
            .iter()
            .zip(&self.sites)
            .map(|(s, c)| {
                let by_category = sitetally_core::DeviceCategory::ALL
                    .iter()
                    .map(|cat| (cat.as_str().to_string(), c.by_category[cat.code() as usize]))
                    .filter(|(_, n)| *n > 0)
                    .collect();
                SiteTruth {
                    tenant: s.tenant.clone(),
                    site: s.name.clone(),
                    kind: s.kind,
                    devices: c.devices,
                    by_category,
                    by_day: c.by_day.clone(),
                    planned_devices: s.devices.len() as u64,
                    licence: s.licence.clone(),
                    grown: s.growth.is_some(),
                    over_tier: s
                        .licence
                        .as_ref()
                        .is_some_and(|l| c.devices > l.capacity as u64),
                }
            })
            .collect();
        GroundTruth {
            seed: world.config.seed,
            now_ms,
            messages: self.messages,
            valid: self.valid,
            not_a_device: self.not_a_device,
            malformed: self
                .malformed
                .iter()
                .map(|(k, n)| (k.as_str().to_string(), *n))
                .collect(),
            malformed_by_reason: self
                .malformed_by_reason
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            sites,
        }
    }
}
