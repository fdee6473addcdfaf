//! Offline reconciliation: licences from a file, counts from a CSV
//! (`tenant,site,category,count[,error_bound]`), decisions printed as a table or JSON.
//! This is `sitetally reconcile --licences FILE --counts FILE`.

use crate::reconciler::ReconcileError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sitetally_core::DeviceCategory;
use sitetally_licensing::count::{CategoryCount, Count, StaticCounts};
use sitetally_licensing::decision::Decision;
use sitetally_licensing::engine::decide_all;
use sitetally_licensing::settings::Settings;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// How decisions are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Aligned text table, one line per site or tenant-wide decision.
    #[default]
    Table,
    /// One JSON document with every decision.
    Json,
}

/// Conditions that make the command exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FailOn {
    /// Any site over its tier (also Enterprise IoT needing standalone licences and
    /// legacy plans above their commitment).
    Over,
}

/// Exit code when `--fail-on` matched.
pub const EXIT_FAIL_ON: i32 = 2;

/// Parses the counts CSV. A header line starting with `tenant` is skipped, as are blank
/// lines and lines starting with `#`. `error_bound` is the one-sigma error of an
/// estimate in devices: when the column is present (even 0) the count is an estimate;
/// when it is absent or empty the count is exact.
pub fn parse_counts_csv(text: &str, file: &str) -> Result<Vec<CategoryCount>, ReconcileError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if n == 1 && cols[0].eq_ignore_ascii_case("tenant") {
            continue;
        }
        let bad =
            |col: &str, msg: String| ReconcileError::Config(format!("{file}:{n}: {col}: {msg}"));
        if !(4..=5).contains(&cols.len()) {
            return Err(bad(
                "line",
                format!(
                    "expected tenant,site,category,count[,error_bound], got {} columns",
                    cols.len()
                ),
            ));
        }
        if cols[0].is_empty() {
            return Err(bad("tenant", "must not be empty".into()));
        }
        if cols[1].is_empty() {
            return Err(bad("site", "must not be empty".into()));
        }
        let category = DeviceCategory::parse(cols[2]).ok_or_else(|| {
            bad(
                "category",
                format!(
                    "unknown category {:?} (known: {})",
                    cols[2],
                    DeviceCategory::ALL.map(|c| c.as_str()).join(", ")
                ),
            )
        })?;
        let value: u64 = cols[3].parse().map_err(|_| {
            bad(
                "count",
                format!("not a non-negative integer: {:?}", cols[3]),
            )
        })?;
        let count = match cols.get(4).filter(|s| !s.is_empty()) {
            None => Count::exact(value),
            Some(s) => {
                let sigma: f64 = s
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        bad("error_bound", format!("not a non-negative number: {s:?}"))
                    })?;
                Count::estimated(value, sigma)
            }
        };
        out.push(CategoryCount {
            tenant: cols[0].to_string(),
            site: cols[1].to_string(),
            category,
            count,
        });
    }
    Ok(out)
}

/// Renders decisions as an aligned table.
pub fn render_table(decisions: &[Decision], settings: &Settings) -> String {
    let header = [
        "TENANT", "SITE", "STATUS", "DEVICES", "METHOD", "LICENSED", "REQUIRED", "UTIL", "WINDOW",
        "NOTES",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for d in decisions {
        let o = &d.outcome;
        let devices = if d.count.is_exact() {
            d.count.value.to_string()
        } else {
            format!("{}±{}", d.count.value, d.error_bound(settings))
        };
        let method = match (d.count.is_exact(), d.exact_fetched, d.uncertain) {
            (_, true, _) => "exact*".to_string(),
            (true, _, _) => "exact".to_string(),
            (false, _, true) => "estimated?".to_string(),
            (false, _, false) => "estimated".to_string(),
        };
        let licensed = match (o.licensed_tier, o.licensed_capacity) {
            (Some(t), _) => t.to_string(),
            (None, Some(c)) => c.to_string(),
            _ => "-".into(),
        };
        let required = o.required_tier.map(|t| t.to_string()).unwrap_or_else(|| {
            if o.billed != d.count.value {
                o.billed.to_string()
            } else {
                "-".into()
            }
        });
        rows.push(vec![
            d.subject.tenant().to_string(),
            d.subject.label(),
            o.status.to_string(),
            devices,
            method,
            licensed,
            required,
            d.utilisation
                .map(|u| format!("{:.0}%", u * 100.0))
                .unwrap_or_else(|| "-".into()),
            format!("{}d", d.window.days()),
            o.notes.join("; "),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("exact* = estimate straddled a boundary, exact count fetched; estimated? = straddled, no exact count available\n");
    out
}

/// JSON document for `--format json`.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    decided_at: DateTime<Utc>,
    over: usize,
    decisions: &'a [Decision],
}

/// Offline reconciliation with default settings. Returns the printed output and the
/// exit code (0, or [`EXIT_FAIL_ON`] when `fail_on` matched).
pub async fn run_offline(
    licences: &Path,
    counts: &Path,
    format: OutputFormat,
    fail_on: Option<FailOn>,
    now: DateTime<Utc>,
) -> Result<(String, i32), ReconcileError> {
    run_offline_with(&Settings::default(), licences, counts, format, fail_on, now).await
}

/// Offline reconciliation with explicit settings.
pub async fn run_offline_with(
    settings: &Settings,
    licences: &Path,
    counts: &Path,
    format: OutputFormat,
    fail_on: Option<FailOn>,
    now: DateTime<Utc>,
) -> Result<(String, i32), ReconcileError> {
    let book = crate::licence_table::load_file(licences, settings)?;
    let text = std::fs::read_to_string(counts).map_err(|source| ReconcileError::Io {
        path: counts.display().to_string(),
        source,
    })?;
    let source = StaticCounts {
        counts: parse_counts_csv(&text, &counts.display().to_string())?,
        exact: HashMap::new(),
    };
    let decisions = decide_all(&book, settings, &source, &HashMap::new(), now).await?;
    Ok((
        render(&decisions, settings, format, now),
        exit_code(&decisions, fail_on),
    ))
}

/// Renders decisions in `format`.
pub fn render(
    decisions: &[Decision],
    settings: &Settings,
    format: OutputFormat,
    now: DateTime<Utc>,
) -> String {
    let over = decisions.iter().filter(|d| d.status().is_over()).count();
    match format {
        OutputFormat::Table => render_table(decisions, settings),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(&JsonReport {
                decided_at: now,
                over,
                decisions,
            })
            .expect("decisions serialize");
            s.push('\n');
            s
        }
    }
}

/// The exit code for `--fail-on`: [`EXIT_FAIL_ON`] when the condition holds, else 0.
pub fn exit_code(decisions: &[Decision], fail_on: Option<FailOn>) -> i32 {
    match fail_on {
        Some(FailOn::Over) if decisions.iter().any(|d| d.status().is_over()) => EXIT_FAIL_ON,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetally_licensing::count::CountMethod;

    #[test]
    fn csv_parses_and_names_bad_cells() {
        let c = parse_counts_csv(
            "tenant,site,category,count,error_bound\nacme,p1,OT,950\nacme,p1,iot,40,3.5\n\n# c\n",
            "c.csv",
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].count, Count::exact(950));
        assert_eq!(c[1].count.method, CountMethod::Estimated);
        assert_eq!(c[1].category, DeviceCategory::Iot);
        let e = parse_counts_csv("acme,p1,PLC,1", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.csv:1: category: unknown category \"PLC\""),
            "{e}"
        );
        let e = parse_counts_csv("acme,p1,OT,-4", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.csv:1: count: "), "{e}");
        let e = parse_counts_csv("acme,p1,OT", "c.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("got 3 columns"), "{e}");
    }
}
