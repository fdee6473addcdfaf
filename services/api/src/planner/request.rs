//! What a request may ask: bounds, pages, dates as store day numbers, and ids.

use crate::error::ApiError;
use crate::model::Granularity;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

/// Longest date range a counts query may span.
pub const MAX_RANGE_DAYS: i64 = 366;
/// Largest page of sites or decisions.
pub const MAX_PAGE: usize = 1_000;
pub const DEFAULT_PAGE: usize = 100;
/// Largest offset accepted (bounded so a request cannot ask for absurd pages).
pub const MAX_OFFSET: usize = 1_000_000;
/// How far back a site counts as known (the sightings table keeps 400 days).
pub const KNOWN_LOOKBACK_DAYS: u16 = 400;
pub const DEFAULT_HISTORY_DAYS: u32 = 90;
pub const MIN_HISTORY_DAYS: u32 = 7;
pub const MAX_HISTORY_DAYS: u32 = 366;
pub const DEFAULT_HORIZON_DAYS: u32 = 365;
pub const MAX_HORIZON_DAYS: u32 = 730;
/// Longest tenant or site id accepted.
pub const MAX_ID_LEN: usize = 256;
/// Default length of a counts range when `from` is not given.
pub const DEFAULT_RANGE_DAYS: i64 = 30;

/// A page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// Checks bounds (422 outside them).
    pub fn new(offset: Option<usize>, limit: Option<usize>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        let offset = offset.unwrap_or(0);
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::Unprocessable(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        if offset > MAX_OFFSET {
            return Err(ApiError::Unprocessable(format!(
                "offset must be at most {MAX_OFFSET}"
            )));
        }
        Ok(Self { offset, limit })
    }

    pub(super) fn slice<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .skip(self.offset)
            .take(self.limit)
            .cloned()
            .collect()
    }
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: DEFAULT_PAGE,
        }
    }
}

/// What a counts query asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountsRequest {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub granularity: Granularity,
}

/// What a forecast asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForecastRequest {
    pub history_days: Option<u32>,
    pub horizon_days: Option<u32>,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// The inclusive range `[from, to]` a request asks for: `to` defaults to `today`, `from`
/// to [`DEFAULT_RANGE_DAYS`] days ending at `to`; 422 when reversed or longer than
/// [`MAX_RANGE_DAYS`].
pub fn date_range(
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = to.unwrap_or(today);
    let from = match from {
        Some(from) => from,
        None => to
            .checked_sub_signed(Duration::days(DEFAULT_RANGE_DAYS - 1))
            .ok_or_else(|| ApiError::Unprocessable(format!("{to}: date out of range")))?,
    };
    if from > to {
        return Err(ApiError::Unprocessable(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(ApiError::Unprocessable(format!(
            "a range may span at most {MAX_RANGE_DAYS} days"
        )));
    }
    Ok((from, to))
}

/// The calendar date of a store day number.
pub fn date_of(day: u16) -> NaiveDate {
    epoch() + Duration::days(i64::from(day))
}

/// The store day number of a date (422 outside 1970-01-01..=2149-06-06).
pub fn day_number(date: NaiveDate) -> Result<u16, ApiError> {
    u16::try_from((date - epoch()).num_days()).map_err(|_| {
        ApiError::Unprocessable(format!(
            "{date}: dates must be between 1970-01-01 and {}",
            date_of(u16::MAX)
        ))
    })
}

pub(super) fn day_of_time(t: DateTime<Utc>) -> u16 {
    sitetally_core::day_of(t.timestamp_millis())
}

/// 400 for ids that cannot be tenant or site ids.
pub fn check_id(kind: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{kind} must be 1 to {MAX_ID_LEN} characters without control characters"
        )));
    }
    Ok(())
}

pub fn periods(from: NaiveDate, to: NaiveDate, g: Granularity) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let natural_end = match g {
            Granularity::Day => start,
            Granularity::Week => {
                start + Duration::days(6 - i64::from(start.weekday().num_days_from_monday()))
            }
            Granularity::Month => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1).expect("first of a month") - Duration::days(1)
            }
        };
        let end = natural_end.min(to);
        out.push((start, end));
        start = end + Duration::days(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn periods_are_iso_weeks_and_months_clipped_to_the_range() {
        // 2025-06-04 is a Wednesday.
        let w = periods(d("2025-06-04"), d("2025-06-20"), Granularity::Week);
        assert_eq!(
            w,
            vec![
                (d("2025-06-04"), d("2025-06-08")),
                (d("2025-06-09"), d("2025-06-15")),
                (d("2025-06-16"), d("2025-06-20"))
            ]
        );
        let m = periods(d("2024-12-15"), d("2025-02-10"), Granularity::Month);
        assert_eq!(
            m,
            vec![
                (d("2024-12-15"), d("2024-12-31")),
                (d("2025-01-01"), d("2025-01-31")),
                (d("2025-02-01"), d("2025-02-10"))
            ]
        );
        assert_eq!(
            periods(d("2025-01-01"), d("2025-01-03"), Granularity::Day).len(),
            3
        );
    }

    #[test]
    fn date_ranges_default_to_thirty_days_and_are_bounded() {
        let today = d("2025-06-30");
        assert_eq!(date_range(None, None, today), Ok((d("2025-06-01"), today)));
        assert!(date_range(Some(d("2025-07-01")), None, today).is_err());
        assert!(date_range(Some(d("2024-06-29")), None, today).is_err());
        assert!(date_range(Some(d("2024-06-30")), None, today).is_ok());
    }

    #[test]
    fn day_numbers_round_trip_and_are_bounded() {
        assert_eq!(date_of(0), d("1970-01-01"));
        assert_eq!(
            day_number(d("2025-06-01")).map(date_of),
            Ok(d("2025-06-01"))
        );
        assert!(day_number(d("1969-12-31")).is_err());
        assert!(day_number(d("2200-01-01")).is_err());
    }

    #[test]
    fn pages_and_ids_are_bounded() {
        assert!(Page::new(None, Some(0)).is_err());
        assert!(Page::new(None, Some(MAX_PAGE + 1)).is_err());
        assert_eq!(
            Page::new(Some(5), None).unwrap(),
            Page {
                offset: 5,
                limit: DEFAULT_PAGE
            }
        );
        assert!(check_id("site", "").is_err());
        assert!(check_id("site", "a\u{0}b").is_err());
        assert!(check_id("site", &"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(check_id("site", "plant north/3").is_ok());
    }
}
