//! Saturating date arithmetic. No input may make a date computation panic: validation
//! rejects licence dates and settings whose results would not be representable (naming
//! the field), and what is computed at decision time saturates at the ends of the
//! representable range, which validated inputs stay centuries away from.

use chrono::{DateTime, Duration, Utc};

/// `t + d`, saturating.
pub fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < Duration::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// `t - d`, saturating.
pub fn minus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(if d < Duration::zero() {
        DateTime::<Utc>::MAX_UTC
    } else {
        DateTime::<Utc>::MIN_UTC
    })
}

/// `t` plus `days` days, saturating.
pub fn plus_days(t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    plus(t, Duration::days(i64::from(days)))
}

/// `t` minus `days` days, saturating.
pub fn minus_days(t: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    minus(t, Duration::days(i64::from(days)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturates_instead_of_panicking() {
        let t = DateTime::<Utc>::MAX_UTC;
        assert_eq!(plus_days(t, u32::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            minus_days(DateTime::<Utc>::MIN_UTC, u32::MAX),
            DateTime::<Utc>::MIN_UTC
        );
        let d = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(plus_days(d, 1) - d, Duration::days(1));
    }
}
