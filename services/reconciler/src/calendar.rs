//! `sitetally calendar`: a tenant's licence calendar from a licence file (the same rules
//! the decisions use; `sitetally_licensing::calendar`).

use crate::reconciler::ReconcileError;
use crate::OutputFormat;
use chrono::{DateTime, Utc};
use clap::Args;
use sitetally_licensing::calendar::{calendar, CalendarEntry};
use std::path::PathBuf;

/// The flags of `sitetally calendar`.
#[derive(Debug, Clone, Args)]
pub struct CalendarArgs {
    /// Licence file (TOML or JSON, by extension), as `reconcile --licences`.
    #[arg(long, value_name = "FILE", env = "SITETALLY_LICENCES")]
    pub licences: PathBuf,

    /// Only this tenant's dates.
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,

    /// Dates after this time (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = crate::cli::parse_rfc3339)]
    pub now: Option<DateTime<Utc>>,

    /// How far ahead to look, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,

    /// Alert this many days before each date (the ALERT FROM column).
    #[arg(long, value_name = "DAYS", default_value_t = 14, value_parser = clap::value_parser!(u32).range(0..=365))]
    pub alert_days: u32,

    /// Reconciler settings (TOML): trial ending days, grace and retention lengths.
    #[arg(long, value_name = "FILE", env = "SITETALLY_RECONCILER_SETTINGS")]
    pub settings: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

impl CalendarArgs {
    /// The calendar, rendered in `--format`.
    pub fn run(&self) -> Result<String, ReconcileError> {
        let settings = crate::cli::read_settings(self.settings.as_deref())?;
        let book = crate::licence_table::load_file(&self.licences, &settings)?;
        if let Some(t) = &self.tenant {
            if book.tenant(t).is_none() {
                return Err(ReconcileError::Config(format!(
                    "{}: no tenant {t:?} (tenants: {})",
                    self.licences.display(),
                    book.tenants
                        .iter()
                        .map(|t| t.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let now = self.now.unwrap_or_else(Utc::now);
        let entries = calendar(
            &book,
            &settings,
            self.tenant.as_deref(),
            now,
            self.days,
            self.alert_days,
        );
        Ok(match self.format {
            OutputFormat::Json => {
                serde_json::to_string_pretty(&entries).expect("entries serialize") + "\n"
            }
            OutputFormat::Table => table(&entries, now, self.days),
        })
    }
}

/// An aligned table, names made printable.
fn table(entries: &[CalendarEntry], now: DateTime<Utc>, days: u32) -> String {
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            let text = |s: &Option<String>| {
                s.as_deref()
                    .map(|v| sitetally_core::text::printable(v).into_owned())
                    .unwrap_or_else(|| "-".into())
            };
            [
                e.at.format("%Y-%m-%d %H:%M").to_string(),
                e.event.code().to_string(),
                sitetally_core::text::printable(&e.tenant).into_owned(),
                text(&e.site),
                text(&e.licence),
                e.alert_at.format("%Y-%m-%d").to_string(),
            ]
        })
        .collect();
    let head = [
        "DATE (UTC)",
        "EVENT",
        "TENANT",
        "SITE",
        "LICENCE",
        "ALERT FROM",
    ];
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l: String = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}  "))
            .collect();
        l.truncate(l.trim_end().len());
        l + "\n"
    };
    let mut out = line(head.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out.push_str(&format!(
        "{} dates from {} to {} days ahead\n",
        rows.len(),
        now.format("%Y-%m-%d"),
        days
    ));
    out
}
