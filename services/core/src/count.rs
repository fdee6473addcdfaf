//! One distinct-device count, as every surface reports it: its value, whether it is exact
//! or a sketch estimate, and the estimate's one-sigma error. Stores produce it, decisions
//! consume it, the API and the CLI print it.

use serde::{Deserialize, Serialize};

/// How a count was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CountMethod {
    /// Distinct devices counted one by one (sightings table, or a sketch below its exact
    /// threshold).
    Exact,
    /// A sketch estimate with an error bound.
    Estimated,
}

impl CountMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            CountMethod::Exact => "EXACT",
            CountMethod::Estimated => "ESTIMATED",
        }
    }
}

/// A distinct-device count with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub value: u64,
    pub method: CountMethod,
    /// One-sigma error in devices (absolute). 0 for exact counts.
    pub sigma: f64,
}

impl Count {
    pub fn exact(value: u64) -> Self {
        Self {
            value,
            method: CountMethod::Exact,
            sigma: 0.0,
        }
    }

    /// An estimate; a zero sigma still counts as an estimate.
    pub fn estimated(value: u64, sigma: f64) -> Self {
        Self {
            value,
            method: CountMethod::Estimated,
            sigma: sigma.max(0.0),
        }
    }

    pub fn is_exact(&self) -> bool {
        self.method == CountMethod::Exact
    }

    /// The error band `[lo, hi]` at `k` sigmas (just the value when exact).
    pub fn band(&self, k: f64) -> (u64, u64) {
        if self.is_exact() {
            return (self.value, self.value);
        }
        let half = (self.sigma * k).ceil();
        let half = if half.is_finite() && half > 0.0 {
            half as u64
        } else {
            0
        };
        (
            self.value.saturating_sub(half),
            self.value.saturating_add(half),
        )
    }

    /// Half-width of the band at `k` sigmas, in whole devices (0 when exact).
    pub fn error_bound(&self, k: f64) -> u64 {
        let (lo, hi) = self.band(k);
        (hi - lo) / 2
    }

    /// Whether the decision "count > boundary" could go either way within the band.
    pub fn straddles(&self, boundary: u64, k: f64) -> bool {
        let (lo, hi) = self.band(k);
        lo <= boundary && boundary < hi
    }

    /// Sum of independent counts: exact only if all are; sigmas add in quadrature.
    pub fn sum<'a>(counts: impl IntoIterator<Item = &'a Count>) -> Count {
        let mut value = 0u64;
        let mut var = 0.0f64;
        let mut exact = true;
        for c in counts {
            value = value.saturating_add(c.value);
            var += c.sigma * c.sigma;
            exact &= c.is_exact();
        }
        if exact {
            Count::exact(value)
        } else {
            Count::estimated(value, var.sqrt())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_and_straddle() {
        let c = Count::estimated(1_000, 16.0);
        assert_eq!(c.band(3.0), (952, 1_048));
        assert!(c.straddles(1_000, 3.0));
        assert!(c.straddles(952, 3.0));
        assert!(!c.straddles(1_048, 3.0));
        assert!(!c.straddles(900, 3.0));
        let e = Count::exact(1_000);
        assert!(!e.straddles(1_000, 3.0));
        assert!(!e.straddles(999, 3.0));
        assert_eq!(e.error_bound(3.0), 0);
    }

    #[test]
    fn sums_in_quadrature() {
        let s = Count::sum(&[Count::estimated(100, 3.0), Count::estimated(200, 4.0)]);
        assert_eq!(s.value, 300);
        assert_eq!(s.sigma, 5.0);
        assert_eq!(s.method, CountMethod::Estimated);
        let e = Count::sum(&[Count::exact(1), Count::exact(2)]);
        assert_eq!(e, Count::exact(3));
    }
}
