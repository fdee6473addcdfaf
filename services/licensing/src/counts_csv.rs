//! The counts CSV of offline runs (`--counts FILE`), read with the `csv` crate: a header
//! line naming the columns (or none: `tenant,site,category,count[,error_bound[,exact]]`
//! in that order), quoted fields (`"Plant, North"`), a UTF-8 BOM, CRLF line ends,
//! blank lines and `#` comment lines.
//!
//! `error_bound` is the one-sigma error of an estimate in devices: when given (even 0)
//! the count is an estimate. `exact` is the exact distinct count of the same row, used
//! exactly as the online path uses storage's exact count: only when the estimate's band
//! straddles a boundary. Every error names the file, the line and the column.

use crate::count::{CategoryCount, Count, CountError, CountQuery, CountSource, MAX_DEVICES};
use sitetally_core::DeviceCategory;
use std::collections::HashMap;
use std::sync::Arc;

/// The columns, in their order when the file has no header.
const COLUMNS: [&str; 6] = [
    "tenant",
    "site",
    "category",
    "count",
    "error_bound",
    "exact",
];

/// (tenant, site, category).
type RowKey = (String, String, DeviceCategory);

/// The counts of a counts CSV, answering as a [`CountSource`]: estimates from `count`
/// and `error_bound`, exact counts from `exact` (or from `recount`, storage asked for
/// just the sites whose estimate straddles a boundary).
#[derive(Clone, Default)]
pub struct CsvCounts {
    /// The file, for messages.
    pub file: String,
    pub counts: Vec<CategoryCount>,
    /// Exact counts per row, from the `exact` column (or `count` without `error_bound`).
    pub exact: HashMap<RowKey, u64>,
    /// Where to recount a site whose rows have no exact count.
    pub recount: Option<Arc<dyn CountSource>>,
}

impl std::fmt::Debug for CsvCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvCounts")
            .field("file", &self.file)
            .field("counts", &self.counts.len())
            .field("recount", &self.recount.is_some())
            .finish()
    }
}

#[async_trait::async_trait]
impl CountSource for CsvCounts {
    async fn site_counts(&self, _query: &CountQuery) -> Result<Vec<CategoryCount>, CountError> {
        Ok(self.counts.clone())
    }

    async fn exact_site_count(
        &self,
        tenant: &str,
        site: &str,
        categories: &[DeviceCategory],
        query: &CountQuery,
    ) -> Result<u64, CountError> {
        let mut total = 0u64;
        let mut missing = Vec::new();
        for c in self
            .counts
            .iter()
            .filter(|c| c.tenant == tenant && c.site == site && categories.contains(&c.category))
        {
            let key = (c.tenant.clone(), c.site.clone(), c.category);
            match self.exact.get(&key) {
                Some(&n) => {
                    total = total.checked_add(n).ok_or_else(|| {
                        CountError::OutOfRange(format!("{tenant}/{site}: exact count overflows"))
                    })?
                }
                None => missing.push(c.category.as_str()),
            }
        }
        if missing.is_empty() {
            return Ok(total);
        }
        match &self.recount {
            Some(store) => store.exact_site_count(tenant, site, categories, query).await,
            None => Err(CountError::Unsupported(format!(
                "{}: no exact count for {tenant}/{site} ({}); add an `exact` column or recount from storage (--data-dir or --clickhouse-url)",
                self.file,
                missing.join(", ")
            ))),
        }
    }
}

/// Reads a counts CSV (see the module docs). `file` names the file in errors.
pub fn read_counts_csv(text: &str, file: &str) -> Result<CsvCounts, CountsCsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut out = CsvCounts {
        file: file.to_string(),
        ..CsvCounts::default()
    };
    let mut columns: Vec<usize> = (0..COLUMNS.len()).collect();
    let mut first_line: HashMap<RowKey, usize> = HashMap::new();
    let mut site_totals: HashMap<(String, String), u64> = HashMap::new();
    let mut tenant_totals: HashMap<String, u64> = HashMap::new();
    let mut exact_totals: HashMap<(String, String), u64> = HashMap::new();
    let mut first = true;
    // Line numbers from byte offsets: the csv crate does not count comment lines, and a
    // record's position is where the reader started, before the comment and blank lines
    // it skipped.
    let newlines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
    let lines: Vec<&str> = text.split('\n').collect();
    let line_at = |byte: u64| {
        let mut i = newlines.partition_point(|&i| (i as u64) < byte);
        while lines
            .get(i)
            .is_some_and(|l| l.trim().is_empty() || l.starts_with('#'))
        {
            i += 1;
        }
        i + 1
    };
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(p.byte()));
            config(format!("{file}:{line}: not valid CSV: {e}"))
        })?;
        let n = record.position().map_or(0, |p| line_at(p.byte()));
        let bad = |col: &str, msg: String| config(format!("{file}:{n}: {col}: {msg}"));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if std::mem::take(&mut first) && is_header(&record) {
            columns = header(&record).map_err(|m| bad("header", m))?;
            continue;
        }
        let cell = |name: &str| -> Option<&str> {
            let i = COLUMNS.iter().position(|c| *c == name)?;
            record.get(*columns.get(i)?)
        };
        let width = columns.iter().filter(|&&c| c != usize::MAX).count();
        if record.len() < 4 || record.len() > width {
            return Err(bad(
                "line",
                format!(
                    "expected {} columns ({}), got {} columns",
                    if width == COLUMNS.len() {
                        "4 to 6".to_string()
                    } else {
                        width.to_string()
                    },
                    if width == COLUMNS.len() {
                        "tenant,site,category,count[,error_bound[,exact]]".to_string()
                    } else {
                        "as the header".to_string()
                    },
                    record.len()
                ),
            ));
        }
        let tenant = cell("tenant").unwrap_or_default();
        let site = cell("site").unwrap_or_default();
        if tenant.is_empty() {
            return Err(bad("tenant", "must not be empty".into()));
        }
        if site.is_empty() {
            return Err(bad("site", "must not be empty".into()));
        }
        let raw_category = cell("category").unwrap_or_default();
        let category = DeviceCategory::parse(raw_category).ok_or_else(|| {
            bad(
                "category",
                format!(
                    "unknown category {raw_category:?} (known: {})",
                    DeviceCategory::ALL.map(|c| c.as_str()).join(", ")
                ),
            )
        })?;
        let value = devices(cell("count").unwrap_or_default()).map_err(|m| bad("count", m))?;
        let sigma = match cell("error_bound").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        bad("error_bound", format!("not a non-negative number: {s:?}"))
                    })?,
            ),
        };
        let exact = match cell("exact").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(devices(s).map_err(|m| bad("exact", m))?),
        };
        let key = (tenant.to_string(), site.to_string(), category);
        if let Some(line) = first_line.get(&key) {
            return Err(bad(
                "line",
                format!(
                    "tenant {tenant:?}, site {site:?}, category {} already given on line {line}; give each once",
                    category.as_str()
                ),
            ));
        }
        first_line.insert(key.clone(), n);
        add_within(&mut site_totals, (key.0.clone(), key.1.clone()), value)
            .ok_or_else(|| bad("count", format!("site {site:?} adds up to more than {MAX_DEVICES} devices, the largest supported count")))?;
        add_within(&mut tenant_totals, key.0.clone(), value)
            .ok_or_else(|| bad("count", format!("tenant {tenant:?} adds up to more than {MAX_DEVICES} devices, the largest supported count")))?;
        if let Some(e) = exact {
            add_within(&mut exact_totals, (key.0.clone(), key.1.clone()), e).ok_or_else(|| {
                bad(
                    "exact",
                    format!("site {site:?} adds up to more than {MAX_DEVICES} devices, the largest supported count"),
                )
            })?;
        }
        let count = match sigma {
            None => {
                if exact.is_some_and(|e| e != value) {
                    return Err(bad(
                        "exact",
                        format!("differs from count {value}, which is exact (no error_bound)"),
                    ));
                }
                out.exact.insert(key.clone(), value);
                Count::exact(value)
            }
            Some(sigma) => {
                if let Some(e) = exact {
                    out.exact.insert(key.clone(), e);
                }
                Count::estimated(value, sigma)
            }
        };
        out.counts.push(CategoryCount {
            tenant: key.0,
            site: key.1,
            category,
            count,
        });
    }
    Ok(out)
}

/// A header line: its first cell is `tenant`, or every cell names a column.
fn is_header(record: &csv::StringRecord) -> bool {
    record[0].eq_ignore_ascii_case("tenant")
        || record
            .iter()
            .all(|cell| COLUMNS.iter().any(|c| c.eq_ignore_ascii_case(cell)))
}

/// Column positions by name from a header line; every name must be known and the four
/// required ones present.
fn header(record: &csv::StringRecord) -> Result<Vec<usize>, String> {
    let mut columns = vec![usize::MAX; COLUMNS.len()];
    for (i, name) in record.iter().enumerate() {
        let k = COLUMNS
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown column {name:?} (known: {})", COLUMNS.join(", ")))?;
        columns[k] = i;
    }
    for (k, name) in COLUMNS.iter().enumerate().take(4) {
        if columns[k] == usize::MAX {
            return Err(format!("missing column {name:?}"));
        }
    }
    Ok(columns)
}

/// A device count cell: a non-negative integer up to [`MAX_DEVICES`].
fn devices(s: &str) -> Result<u64, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<u64>() {
            Ok(v) if v <= MAX_DEVICES => Ok(v),
            _ => Err(format!(
                "{s} is above the largest supported count ({MAX_DEVICES} devices)"
            )),
        };
    }
    Err(format!("not a non-negative integer: {s:?}"))
}

/// Adds `value` to `totals[key]` unless the total would pass [`MAX_DEVICES`].
fn add_within<K: std::hash::Hash + Eq>(
    totals: &mut HashMap<K, u64>,
    key: K,
    value: u64,
) -> Option<()> {
    let total = totals.entry(key).or_default();
    *total = total.checked_add(value).filter(|&t| t <= MAX_DEVICES)?;
    Some(())
}

/// A counts CSV that cannot be used; the message names the file, the line and the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CountsCsvError(pub String);

fn config(message: String) -> CountsCsvError {
    CountsCsvError(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_bom_crlf_blank_and_comment_lines() {
        let text = "\u{feff}tenant,site,category,count,error_bound,exact\r\n\r\n# a comment\r\n\"acme\",\"Plant, North\",OT,950\r\n  \r\nacme,p2,iot,40,3.5,41\r\n";
        let c = read_counts_csv(text, "c.csv").unwrap();
        assert_eq!(c.counts.len(), 2);
        assert_eq!(c.counts[0].site, "Plant, North");
        assert_eq!(c.counts[0].count, Count::exact(950));
        assert_eq!(c.counts[1].count, Count::estimated(40, 3.5));
        assert_eq!(
            c.exact
                .get(&("acme".into(), "p2".into(), DeviceCategory::Iot)),
            Some(&41)
        );
    }

    #[test]
    fn header_columns_in_any_order() {
        let c = read_counts_csv("count,category,site,tenant\n5,OT,s,t\n", "c.csv").unwrap();
        assert_eq!(c.counts[0].tenant, "t");
        assert_eq!(c.counts[0].count.value, 5);
        let e = read_counts_csv("tenant,site,category,devices\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.csv:1: header: unknown column \"devices\""),
            "{e}"
        );
    }

    #[test]
    fn duplicates_and_out_of_range_counts_name_file_and_lines() {
        let e = read_counts_csv("a,s,OT,1\n# c\na,s,OT,2\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "c.csv:3: line: tenant \"a\", site \"s\", category OT already given on line 1"
            ),
            "{e}"
        );
        let e = read_counts_csv("a,s,OT,18446744073709551615\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "c.csv:1: count: 18446744073709551615 is above the largest supported count"
            ),
            "{e}"
        );
        let e = read_counts_csv("a,s,OT,99999999999999999999999\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("above the largest supported count"), "{e}");
        let e = read_counts_csv("a,s,OT,600000000\na,s,IOT,600000000\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.csv:2: count: site \"s\" adds up to more than"),
            "{e}"
        );
        let e = read_counts_csv("a,s,OT,5,,6\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.csv:1: exact: differs from count 5"), "{e}");
    }
}
