//! Reports: what one sensor says about one device in one round of the schedule, before
//! encoding; MACs in the varied spellings sitetally accepts, and the reports about
//! things that are not devices (public, multicast and broadcast addresses).

use crate::world::World;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use sitetally_core::DeviceCategory;

/// A report before encoding; strings borrow from the world where they can.
pub(crate) struct Report<'w> {
    pub(crate) tenant: &'w str,
    pub(crate) site: &'w str,
    pub(crate) sensor: &'w str,
    pub(crate) observed_at: i64,
    pub(crate) zone: Option<&'w str>,
    pub(crate) device_id: Option<String>,
    pub(crate) macs: Vec<String>,
    pub(crate) ips: Vec<String>,
    pub(crate) category: DeviceCategory,
    pub(crate) agent_managed: bool,
    pub(crate) vendor: Option<&'w str>,
    pub(crate) model: Option<&'w str>,
    pub(crate) hostname: Option<&'w str>,
    pub(crate) firmware: Option<&'w str>,
    pub(crate) protocols: &'w [&'w str],
}

/// Where in the schedule a report is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoundPosition {
    /// In the planned schedule (false: an endless stream's repeat reports).
    pub(crate) scheduled: bool,
    pub(crate) day: u16,
    pub(crate) round: u32,
    /// Timestamps fall within this inclusive range.
    pub(crate) slice: (i64, i64),
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

/// A valid report of device `idx` at position `at`: MACs in random spellings and order,
/// the sensor whose turn it is, a timestamp within the round's slice.
pub(crate) fn report<'w>(
    world: &'w World,
    rng: &mut StdRng,
    at: RoundPosition,
    idx: usize,
) -> Report<'w> {
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

/// A valid report about something that is not a device, "seen" by `idx`'s sensors at
/// position `at`: a public IP, multicast or broadcast address, no device details.
pub(crate) fn not_a_device<'w>(
    world: &'w World,
    rng: &mut StdRng,
    at: RoundPosition,
    idx: usize,
) -> Report<'w> {
    let mut report = report(world, rng, at, idx);
    report.device_id = None;
    report.hostname = None;
    report.category = DeviceCategory::Unknown;
    report.vendor = None;
    report.model = None;
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
            vec!["224.0.0.251".into(), "239.255.255.250".into()][rng.gen_range(0..2)..].to_vec(),
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
    report
}

#[cfg(test)]
mod tests {
    use super::*;

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
