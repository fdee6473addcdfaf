//! Field readers for validation: a required field, a time, a non-empty id, each
//! naming the field's path when it is wrong.

use super::raw::RawTime;
use super::LicenceError;
use chrono::{DateTime, NaiveDate, Utc};

pub(super) fn parse_time(path: &str, raw: &RawTime) -> Result<DateTime<Utc>, LicenceError> {
    let s = raw.0.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
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
