//! OT licences: the published site tiers, the licence a site of a given size needs, and
//! the tier bucket a size falls in.

use serde::{Deserialize, Serialize};

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

/// Tier bucket of a size: 0 = XS … 4 = XL, 5 = above 5,000.
pub(crate) fn bucket_of(size: u32) -> usize {
    TIERS.iter().position(|(_, max)| size <= *max).unwrap_or(5)
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
}
