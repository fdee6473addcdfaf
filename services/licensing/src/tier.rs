//! Site tiers and the tier catalogue: how many devices each OT site tier covers, and
//! which tier (or stack of XL licences) a device count needs.
//!
//! The documents publish XS = 100, L = 1,000 and XL = 5,000 devices. S and M exist but
//! their sizes are only on a pricing page; we ship the usual 250 and 500 as defaults and
//! let operators change them. 2XL and 3XL exist for sites above 5,000 devices but their
//! sizes are not published: they are absent unless configured.

use crate::count::MAX_DEVICES;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// An OT site tier. Ordered from smallest to largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    #[serde(rename = "XS")]
    Xs,
    #[serde(rename = "S")]
    S,
    #[serde(rename = "M")]
    M,
    #[serde(rename = "L")]
    L,
    #[serde(rename = "XL")]
    Xl,
    #[serde(rename = "2XL")]
    Xl2,
    #[serde(rename = "3XL")]
    Xl3,
}

impl Tier {
    /// Every tier, smallest first.
    pub const ALL: [Tier; 7] = [
        Tier::Xs,
        Tier::S,
        Tier::M,
        Tier::L,
        Tier::Xl,
        Tier::Xl2,
        Tier::Xl3,
    ];

    /// The name used in licence files, alerts and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Xs => "XS",
            Tier::S => "S",
            Tier::M => "M",
            Tier::L => "L",
            Tier::Xl => "XL",
            Tier::Xl2 => "2XL",
            Tier::Xl3 => "3XL",
        }
    }

    /// Only XL licences may be stacked (several on one site).
    pub fn stackable(self) -> bool {
        self == Tier::Xl
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tier name that is not one of XS, S, M, L, XL, 2XL, 3XL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier {0:?}")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownTier(s.to_string()))
    }
}

/// A licensing need or holding: `quantity` licences of `tier` (quantity > 1 only for XL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TierNeed {
    pub tier: Tier,
    pub quantity: u32,
}

impl TierNeed {
    pub fn one(tier: Tier) -> Self {
        Self { tier, quantity: 1 }
    }
}

impl fmt::Display for TierNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quantity == 1 {
            write!(f, "{}", self.tier)
        } else {
            write!(f, "{}x{}", self.quantity, self.tier)
        }
    }
}

/// What to require for a site above the XL size. The documents disagree: one says XL
/// licences stack, another points to 2XL/3XL tiers in the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AboveXlPolicy {
    /// Default: ceil(count / XL size) stacked XL licences. Always possible, needs no
    /// unpublished sizes.
    #[default]
    StackedXl,
    /// The smallest of 2XL/3XL from the catalogue that covers the count; stacked XL when
    /// neither is configured or neither is big enough.
    LargerTiers,
}

/// Tier sizes (devices covered by one licence). XS..XL are always present; 2XL and 3XL
/// only when configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCatalogue {
    sizes: BTreeMap<Tier, u64>,
}

impl Default for TierCatalogue {
    /// XS 100, S 250, M 500, L 1,000, XL 5,000; no 2XL/3XL.
    fn default() -> Self {
        let sizes = [
            (Tier::Xs, 100),
            (Tier::S, 250),
            (Tier::M, 500),
            (Tier::L, 1_000),
            (Tier::Xl, 5_000),
        ]
        .into_iter()
        .collect();
        Self { sizes }
    }
}

/// Partial catalogue: sizes to change or add. Used for the global `[catalogue]` table of
/// a licence file and for per-tenant overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueOverride {
    /// Tier name (e.g. `"M"`, `"2XL"`) to device count.
    #[serde(flatten)]
    pub sizes: BTreeMap<String, u64>,
}

/// Why a catalogue is invalid. The `String` is the offending tier key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("{0}: unknown tier (known: XS, S, M, L, XL, 2XL, 3XL)")]
    UnknownTier(String),
    #[error("{0}: size must be greater than zero")]
    Zero(String),
    #[error("{0}: size {1} is above the largest supported count ({MAX_DEVICES} devices)")]
    TooLarge(String, u64),
    #[error("{tier}: size {size} must be larger than {smaller} ({smaller_size})")]
    NotIncreasing {
        tier: String,
        size: u64,
        smaller: String,
        smaller_size: u64,
    },
}

impl TierCatalogue {
    /// Applies an override on top of this catalogue and checks that sizes grow with tiers.
    pub fn with_override(&self, o: &CatalogueOverride) -> Result<Self, CatalogueError> {
        let mut sizes = self.sizes.clone();
        for (name, &size) in &o.sizes {
            let tier: Tier = name
                .parse()
                .map_err(|_| CatalogueError::UnknownTier(name.clone()))?;
            if size == 0 {
                return Err(CatalogueError::Zero(name.clone()));
            }
            if size > MAX_DEVICES {
                return Err(CatalogueError::TooLarge(name.clone(), size));
            }
            sizes.insert(tier, size);
        }
        let cat = Self { sizes };
        cat.check()?;
        Ok(cat)
    }

    fn check(&self) -> Result<(), CatalogueError> {
        let mut prev: Option<(Tier, u64)> = None;
        for (&t, &s) in &self.sizes {
            if let Some((pt, ps)) = prev {
                if s <= ps {
                    return Err(CatalogueError::NotIncreasing {
                        tier: t.to_string(),
                        size: s,
                        smaller: pt.to_string(),
                        smaller_size: ps,
                    });
                }
            }
            prev = Some((t, s));
        }
        Ok(())
    }

    /// Devices covered by one licence of `tier`, if the tier is in the catalogue.
    pub fn size(&self, tier: Tier) -> Option<u64> {
        self.sizes.get(&tier).copied()
    }

    /// XL size (always present).
    pub fn xl_size(&self) -> u64 {
        self.size(Tier::Xl).unwrap_or(5_000)
    }

    /// Tiers present in the catalogue, smallest first.
    pub fn tiers(&self) -> impl Iterator<Item = (Tier, u64)> + '_ {
        self.sizes.iter().map(|(&t, &s)| (t, s))
    }

    /// Comma-separated tier names, for error messages.
    pub fn known_names(&self) -> String {
        self.sizes
            .keys()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Devices covered by a holding or need. Saturating is exact for every comparison
    /// with a `u64` count (validated catalogues and licences never saturate).
    pub fn capacity(&self, need: TierNeed) -> u64 {
        self.size(need.tier)
            .unwrap_or(0)
            .saturating_mul(u64::from(need.quantity))
    }

    /// The smallest licensing that covers `count` devices: one licence of the smallest
    /// tier whose size covers the count (2,000 devices → one XL, never two L); above XL,
    /// stacked XL or 2XL/3XL according to `policy`.
    pub fn required(&self, count: u64, policy: AboveXlPolicy) -> TierNeed {
        let xl = self.xl_size();
        for (t, s) in self.tiers() {
            if t > Tier::Xl {
                break;
            }
            if count <= s {
                return TierNeed::one(t);
            }
        }
        if policy == AboveXlPolicy::LargerTiers {
            for t in [Tier::Xl2, Tier::Xl3] {
                if let Some(s) = self.size(t) {
                    if count <= s {
                        return TierNeed::one(t);
                    }
                }
            }
        }
        // Sizes are at least 5 devices for XL and counts the engine decides on at most
        // [`MAX_DEVICES`], so the quantity fits; saturating keeps `required` monotone.
        let quantity = count.div_ceil(xl.max(1));
        TierNeed {
            tier: Tier::Xl,
            quantity: u32::try_from(quantity).unwrap_or(u32::MAX),
        }
    }

    /// Every count at which [`TierCatalogue::required`] changes, up to `max` (tier sizes
    /// and, above XL, multiples of the XL size). A count `c` needs more than the
    /// boundary `b` when `c > b`.
    pub fn boundaries(&self, max: u64, policy: AboveXlPolicy) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .tiers()
            .filter(|(t, _)| *t <= Tier::Xl || policy == AboveXlPolicy::LargerTiers)
            .map(|(_, s)| s)
            .collect();
        let xl = self.xl_size().max(1);
        let mut b = xl.checked_mul(2);
        while let Some(v) = b.filter(|&v| v <= max.saturating_add(xl)) {
            out.push(v);
            b = v.checked_add(xl);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_design() {
        let c = TierCatalogue::default();
        assert_eq!(c.size(Tier::Xs), Some(100));
        assert_eq!(c.size(Tier::S), Some(250));
        assert_eq!(c.size(Tier::M), Some(500));
        assert_eq!(c.size(Tier::L), Some(1_000));
        assert_eq!(c.size(Tier::Xl), Some(5_000));
        assert_eq!(c.size(Tier::Xl2), None);
        assert_eq!(c.size(Tier::Xl3), None);
    }

    #[test]
    fn two_thousand_devices_need_one_xl_never_two_l() {
        let c = TierCatalogue::default();
        assert_eq!(
            c.required(2_000, AboveXlPolicy::StackedXl),
            TierNeed::one(Tier::Xl)
        );
    }

    #[test]
    fn smallest_covering_tier_at_each_boundary() {
        let c = TierCatalogue::default();
        let p = AboveXlPolicy::StackedXl;
        assert_eq!(c.required(0, p).tier, Tier::Xs);
        assert_eq!(c.required(100, p).tier, Tier::Xs);
        assert_eq!(c.required(101, p).tier, Tier::S);
        assert_eq!(c.required(250, p).tier, Tier::S);
        assert_eq!(c.required(251, p).tier, Tier::M);
        assert_eq!(c.required(1_000, p).tier, Tier::L);
        assert_eq!(c.required(1_001, p).tier, Tier::Xl);
        assert_eq!(c.required(5_000, p), TierNeed::one(Tier::Xl));
    }

    #[test]
    fn above_xl_stacks_xl_by_default() {
        let c = TierCatalogue::default();
        let need = c.required(5_001, AboveXlPolicy::StackedXl);
        assert_eq!(
            need,
            TierNeed {
                tier: Tier::Xl,
                quantity: 2
            }
        );
        assert_eq!(need.to_string(), "2xXL");
        assert_eq!(c.required(12_000, AboveXlPolicy::StackedXl).quantity, 3);
    }

    #[test]
    fn above_xl_uses_2xl_3xl_when_configured() {
        let o = CatalogueOverride {
            sizes: [("2XL".to_string(), 10_000), ("3XL".to_string(), 15_000)]
                .into_iter()
                .collect(),
        };
        let c = TierCatalogue::default().with_override(&o).unwrap();
        let p = AboveXlPolicy::LargerTiers;
        assert_eq!(c.required(5_001, p), TierNeed::one(Tier::Xl2));
        assert_eq!(c.required(10_001, p), TierNeed::one(Tier::Xl3));
        // Bigger than 3XL: fall back to stacked XL.
        assert_eq!(c.required(15_001, p).quantity, 4);
        // Under the default policy 2XL/3XL are ignored.
        assert_eq!(c.required(5_001, AboveXlPolicy::StackedXl).quantity, 2);
        // LargerTiers without sizes falls back to stacking.
        assert_eq!(TierCatalogue::default().required(5_001, p).quantity, 2);
    }

    #[test]
    fn overrides_are_validated() {
        let bad = |k: &str, v: u64| CatalogueOverride {
            sizes: [(k.to_string(), v)].into_iter().collect(),
        };
        let c = TierCatalogue::default();
        assert_eq!(
            c.with_override(&bad("XXL", 1)).unwrap_err().to_string(),
            "XXL: unknown tier (known: XS, S, M, L, XL, 2XL, 3XL)"
        );
        assert!(matches!(
            c.with_override(&bad("M", 0)),
            Err(CatalogueError::Zero(_))
        ));
        assert_eq!(
            c.with_override(&bad("M", 2_000)).unwrap_err().to_string(),
            "L: size 1000 must be larger than M (2000)"
        );
        let ok = c.with_override(&bad("M", 400)).unwrap();
        assert_eq!(ok.size(Tier::M), Some(400));
    }

    #[test]
    fn tier_names_parse_case_insensitively() {
        assert_eq!("xl".parse::<Tier>().unwrap(), Tier::Xl);
        assert_eq!("2xl".parse::<Tier>().unwrap(), Tier::Xl2);
        assert!("XXL".parse::<Tier>().is_err());
    }
}
