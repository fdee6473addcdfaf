//! Forecast: a least-squares line through a site's daily distinct-device counts, and the
//! first day that line (and its 95% confidence band) rises above a boundary.
//!
//! Pure functions on numbers: days are integers relative to "today" (0), so tests can
//! build series with known crossing days.

/// z for a two-sided 95% band.
pub const Z95: f64 = 1.96;

/// Fewest points a trend is fitted on.
pub const MIN_POINTS: usize = 3;

/// A fitted line `y = intercept + slope * x` with what is needed for its band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Devices per day.
    pub slope: f64,
    /// Fitted value at x = 0 (today).
    pub intercept: f64,
    /// Residual standard deviation (devices); 0 for a perfect fit.
    pub residual_sigma: f64,
    /// Coefficient of determination (1 for a perfect fit; 0 for a flat series).
    pub r_squared: f64,
    pub n: usize,
    mean_x: f64,
    sxx: f64,
}

impl Trend {
    /// Least squares over `(day, value)`. None with fewer than [`MIN_POINTS`] points or
    /// all points on one day.
    pub fn fit(points: &[(i64, f64)]) -> Option<Trend> {
        let n = points.len();
        if n < MIN_POINTS {
            return None;
        }
        let nf = n as f64;
        let mean_x = points.iter().map(|p| p.0 as f64).sum::<f64>() / nf;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / nf;
        let sxx: f64 = points.iter().map(|p| (p.0 as f64 - mean_x).powi(2)).sum();
        if sxx == 0.0 {
            return None;
        }
        let sxy: f64 = points
            .iter()
            .map(|p| (p.0 as f64 - mean_x) * (p.1 - mean_y))
            .sum();
        let slope = sxy / sxx;
        let intercept = mean_y - slope * mean_x;
        let ssr: f64 = points
            .iter()
            .map(|p| (p.1 - (intercept + slope * p.0 as f64)).powi(2))
            .sum();
        let sst: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
        let residual_sigma = if n > 2 {
            (ssr / (nf - 2.0)).sqrt()
        } else {
            0.0
        };
        let r_squared = if sst > 0.0 {
            (1.0 - ssr / sst).clamp(0.0, 1.0)
        } else {
            0.0
        };
        Some(Trend {
            slope,
            intercept,
            residual_sigma,
            r_squared,
            n,
            mean_x,
            sxx,
        })
    }

    /// The line at day `x`.
    pub fn at(&self, x: i64) -> f64 {
        self.intercept + self.slope * x as f64
    }

    /// Standard error of the fitted mean at day `x` (grows away from the data).
    pub fn standard_error(&self, x: i64) -> f64 {
        self.residual_sigma
            * (1.0 / self.n as f64 + (x as f64 - self.mean_x).powi(2) / self.sxx).sqrt()
    }

    /// The 95% band `(lower, upper)` at day `x`.
    pub fn band(&self, x: i64) -> (f64, f64) {
        let h = Z95 * self.standard_error(x);
        (self.at(x) - h, self.at(x) + h)
    }
}

/// When a boundary is crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// First day in `0..=horizon` the line is above the boundary; None = not within
    /// the horizon.
    pub day: Option<i64>,
    /// First day the band's upper edge is above it (the earliest plausible crossing).
    pub earliest: Option<i64>,
    /// First day the band's lower edge is above it (None: possibly later than the
    /// horizon).
    pub latest: Option<i64>,
}

/// First day in `0..=horizon` at which `f(day)` exceeds `boundary` (a device count
/// crosses boundary `b` when it becomes `> b`).
fn first_above(horizon: i64, boundary: f64, f: impl Fn(i64) -> f64) -> Option<i64> {
    (0..=horizon).find(|&x| f(x) > boundary)
}

/// The crossing of `boundary` by `trend` within `horizon` days from today.
pub fn crossing(trend: &Trend, boundary: f64, horizon: i64) -> Crossing {
    Crossing {
        day: first_above(horizon, boundary, |x| trend.at(x)),
        earliest: first_above(horizon, boundary, |x| trend.band(x).1),
        latest: first_above(horizon, boundary, |x| trend.band(x).0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `start + slope * x` for x in -days..0, plus optional deterministic noise.
    fn series(days: i64, start: f64, slope: f64, noise: f64) -> Vec<(i64, f64)> {
        (-days..0)
            .map(|x| {
                // A fixed zig-zag: mean zero, no randomness in tests.
                let wiggle = match x.rem_euclid(4) {
                    0 => 1.0,
                    1 => -1.0,
                    2 => 0.5,
                    _ => -0.5,
                };
                (x, start + slope * x as f64 + noise * wiggle)
            })
            .collect()
    }

    #[test]
    fn exact_line_crosses_on_the_known_day() {
        // 500 devices today, +10 a day: above 1,000 first on day 51 (1,010).
        let pts = series(30, 500.0, 10.0, 0.0);
        let t = Trend::fit(&pts).unwrap();
        assert!((t.slope - 10.0).abs() < 1e-9 && (t.intercept - 500.0).abs() < 1e-9);
        assert!((t.r_squared - 1.0).abs() < 1e-12 && t.residual_sigma < 1e-9);
        let c = crossing(&t, 1_000.0, 365);
        assert_eq!(
            c,
            Crossing {
                day: Some(51),
                earliest: Some(51),
                latest: Some(51)
            }
        );
    }

    #[test]
    fn noisy_line_brackets_the_true_day() {
        // 3,000 today, +25 a day: the 5,000 boundary is passed on day 81.
        let pts = series(60, 3_000.0, 25.0, 40.0);
        let t = Trend::fit(&pts).unwrap();
        let c = crossing(&t, 5_000.0, 365);
        let day = c.day.unwrap();
        assert!((79..=83).contains(&day), "{day}");
        let (e, l) = (c.earliest.unwrap(), c.latest.unwrap());
        assert!(e < day && day < l, "{e} {day} {l}");
        assert!(e <= 81 && 81 <= l);
        // More noise, wider range.
        let wide = crossing(
            &Trend::fit(&series(60, 3_000.0, 25.0, 200.0)).unwrap(),
            5_000.0,
            365,
        );
        assert!(wide.earliest.unwrap() < e && wide.latest.unwrap() > l);
    }

    #[test]
    fn flat_falling_or_slow_series_do_not_cross_within_the_horizon() {
        let flat = Trend::fit(&series(30, 800.0, 0.0, 0.0)).unwrap();
        assert_eq!(crossing(&flat, 1_000.0, 365).day, None);
        let falling = Trend::fit(&series(30, 800.0, -3.0, 5.0)).unwrap();
        assert_eq!(crossing(&falling, 1_000.0, 365).day, None);
        // +1/day from 800 reaches 1,001 on day 201: beyond a 180-day horizon.
        let slow = Trend::fit(&series(30, 800.0, 1.0, 0.0)).unwrap();
        assert_eq!(crossing(&slow, 1_000.0, 180).day, None);
        assert_eq!(crossing(&slow, 1_000.0, 365).day, Some(201));
    }

    #[test]
    fn already_above_crosses_today_and_short_series_do_not_fit() {
        let t = Trend::fit(&series(10, 1_200.0, 5.0, 0.0)).unwrap();
        assert_eq!(crossing(&t, 1_000.0, 365).day, Some(0));
        assert!(Trend::fit(&[(0, 1.0), (1, 2.0)]).is_none());
        assert!(Trend::fit(&[(3, 1.0), (3, 2.0), (3, 5.0)]).is_none());
    }

    #[test]
    fn band_widens_away_from_the_data() {
        let t = Trend::fit(&series(30, 500.0, 2.0, 10.0)).unwrap();
        let near = t.band(0);
        let far = t.band(200);
        assert!(far.1 - far.0 > near.1 - near.0);
    }
}
