//! Field readers for validation: a required field, a time, a non-empty id, each
//! naming the field's path when it is wrong.

use super::raw::RawTime;
use super::LicenceError;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The last instant a licence date (given or computed) may fall on: dates stay in years
/// 1..=9999, so that every later computation (grace, retention) is representable.
pub(super) fn last_date() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn first_date() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `start` plus `days` days; an error naming `path` when the result is past
/// [`last_date`].
pub(super) fn days_after(
    path: &str,
    start: DateTime<Utc>,
    days: u32,
) -> Result<DateTime<Utc>, LicenceError> {
    start
        .checked_add_signed(Duration::days(i64::from(days)))
        .filter(|&t| t <= last_date())
        .ok_or_else(|| {
            LicenceError::invalid(
                path,
                format!(
                    "{days} days after {} is past 9999-12-31: out of range",
                    start.to_rfc3339()
                ),
            )
        })
}

pub(super) fn parse_time(path: &str, raw: &RawTime) -> Result<DateTime<Utc>, LicenceError> {
    let s = raw.0.trim();
    let parsed = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        });
    if let Some(t) = parsed {
        if t < first_date() || t > last_date() {
            return Err(LicenceError::invalid(
                path,
                format!("time {s:?} out of range (years 0001 to 9999)"),
            ));
        }
        return Ok(t);
    }
    Err(LicenceError::invalid(
        path,
        format!("invalid time {s:?} (expected RFC 3339, e.g. 2025-01-31T00:00:00Z, or YYYY-MM-DD)"),
    ))
}

pub(super) fn req<'a, T>(v: &'a Option<T>, path: &str) -> Result<&'a T, LicenceError> {
    v.as_ref()
        .ok_or_else(|| LicenceError::invalid(path, "missing required field"))
}

/// A required time field.
pub(super) fn req_time(v: &Option<RawTime>, path: &str) -> Result<DateTime<Utc>, LicenceError> {
    parse_time(path, req(v, path)?)
}

pub(super) fn non_empty_id(id: &Option<String>, path: &str) -> Result<String, LicenceError> {
    let id = req(id, path)?;
    if id.trim().is_empty() {
        return Err(LicenceError::invalid(path, "must not be empty"));
    }
    Ok(id.clone())
}
