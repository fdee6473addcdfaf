//! The simulator's settings: [`SimConfig`] (every knob of the world and its traffic, with
//! defaults) and [`SizeProfile`], validated before a world is built.

use crate::SimError;
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_name_the_field() {
        let c = SimConfig {
            reports_per_device: 1,
            ..SimConfig::default()
        };
        match c.validate() {
            Err(SimError::Config { field, .. }) => assert_eq!(field, "reports_per_device"),
            other => panic!("{other:?}"),
        }
    }
}
