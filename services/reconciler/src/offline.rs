//! Offline reconciliation: licences from a file, counts from a CSV
//! (`tenant,site,category,count[,error_bound[,exact]]`, see [`crate::counts_csv`]),
//! decisions printed as a table or JSON. This is
//! `sitetally reconcile --licences FILE --counts FILE`.

use crate::counts_csv::read_counts_csv;
use crate::reconciler::ReconcileError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sitetally_licensing::count::{CategoryCount, CountSource};
use sitetally_licensing::decision::Decision;
use sitetally_licensing::decision::{Status, Subject};
use sitetally_licensing::engine::decide_all;
use sitetally_licensing::settings::Settings;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

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

/// Conditions that make the command exit with [`EXIT_FAIL_ON`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// Any subject over or possibly over: an estimate straddling a boundary with no
    /// exact count to settle it may hide an overrun (POSSIBLY_OVER). The level of a
    /// bare `--fail-on`.
    PossiblyOver,
    /// Only subjects definitely over: a site over its tier, Enterprise IoT short of
    /// licences, a legacy plan above its commitment.
    Over,
}

/// Exit code when `--fail-on` matched.
pub const EXIT_FAIL_ON: i32 = 1;

/// Exit code of usage and input errors (bad flags, files, values), as clap uses.
pub const EXIT_USAGE: i32 = 2;

/// Parses the counts CSV into per-category counts (see [`crate::counts_csv`] for the
/// format and [`read_counts_csv`] for the exact counts it may also carry).
pub fn parse_counts_csv(text: &str, file: &str) -> Result<Vec<CategoryCount>, ReconcileError> {
    Ok(read_counts_csv(text, file)?.counts)
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
        // A licence-calendar date rests on no count.
        let dated = matches!(d.subject, Subject::Date { .. });
        let (devices, method, window) = if dated {
            ("-".into(), "-".into(), "-".into())
        } else {
            (devices, method, format!("{}d", d.window.days()))
        };
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
            window,
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

/// One line per decision that rests on a straddling estimate, for stderr: such a
/// decision never passes silently, whatever the output format and `--fail-on`.
pub fn uncertain_warnings(decisions: &[Decision], settings: &Settings) -> Vec<String> {
    decisions
        .iter()
        .filter(|d| d.uncertain)
        .map(|d| {
            format!(
                "warning: {}: {} rests on an estimate ({}±{}) that straddles a boundary; give an exact count to decide",
                d.subject,
                d.status(),
                d.count.value,
                d.error_bound(settings)
            )
        })
        .collect()
}

/// JSON document for `--format json`.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    decided_at: DateTime<Utc>,
    /// Subjects definitely over.
    over: usize,
    /// Subjects possibly over (an estimate straddling an over boundary, no exact count).
    possibly_over: usize,
    decisions: &'a [Decision],
}

/// Offline reconciliation with default settings. Returns the printed output and the
/// exit code (0, or [`EXIT_FAIL_ON`] when `fail_on` matched). Exact counts come from
/// the CSV's `exact` column only.
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
    let (decisions, _) = decide_offline(settings, licences, counts, None, now).await?;
    Ok((
        render(&decisions, settings, format, now),
        exit_code(&decisions, fail_on),
    ))
}

/// Decides from a licence file and a counts CSV; an estimate straddling a boundary is
/// settled by the CSV's `exact` column, else by `recount` (storage) when given. Also
/// returns the stderr warnings for decisions that stayed uncertain.
pub async fn decide_offline(
    settings: &Settings,
    licences: &Path,
    counts: &Path,
    recount: Option<Arc<dyn CountSource>>,
    now: DateTime<Utc>,
) -> Result<(Vec<Decision>, Vec<String>), ReconcileError> {
    let book = crate::licence_table::load_file(licences, settings)?;
    let text = std::fs::read_to_string(counts).map_err(|source| ReconcileError::Io {
        path: counts.display().to_string(),
        source,
    })?;
    let mut source = read_counts_csv(&text, &counts.display().to_string())?;
    source.recount = recount;
    let mut decisions = decide_all(&book, settings, &source, &HashMap::new(), now).await?;
    decisions.extend(sitetally_licensing::calendar::date_decisions(
        &book, settings, now,
    ));
    let warnings = uncertain_warnings(&decisions, settings);
    Ok((decisions, warnings))
}

/// Renders decisions in `format`.
pub fn render(
    decisions: &[Decision],
    settings: &Settings,
    format: OutputFormat,
    now: DateTime<Utc>,
) -> String {
    let over = decisions.iter().filter(|d| d.status().is_over()).count();
    let possibly_over = decisions
        .iter()
        .filter(|d| matches!(d.status(), Status::PossiblyOver { .. }))
        .count();
    match format {
        OutputFormat::Table => render_table(decisions, settings),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(&JsonReport {
                decided_at: now,
                over,
                possibly_over,
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
    let holds = |d: &Decision| match fail_on {
        Some(FailOn::Over) => d.status().is_over(),
        Some(FailOn::PossiblyOver) => d.status().is_possibly_over(),
        None => false,
    };
    if decisions.iter().any(holds) {
        EXIT_FAIL_ON
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetally_core::DeviceCategory;
    use sitetally_licensing::count::{Count, CountMethod};

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
