//! The end-of-run summary: one row per simulated site with what sitetally counted (exact,
//! or estimated ± its error bound), what the simulator really emitted, the licensed tier
//! and the reconciler's status; rendered as a table for people or JSON for scripts.
//!
//! Everything here is pure: rows are built from the world, the simulator's ground truth,
//! the store's counts and the reconciler's decisions.

use crate::SummaryFormat;
use serde::Serialize;
use sitetally_core::text::printable;
use sitetally_ingest::IngestReport;
use sitetally_licensing::{Count, Decision, Subject};
use sitetally_sensor_sim::{GroundTruth, SiteKind};
use sitetally_store::SiteCount;
use std::collections::HashMap;
use std::fmt::Write;

/// One simulated site at the end of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteRow {
    pub tenant: String,
    pub site: String,
    /// `ot` or `enterprise_iot`.
    pub kind: SiteKind,
    /// Distinct devices counted by sitetally over the OT billing window: the count the
    /// reconciler decided on (exact when it fetched the exact count near a boundary), as
    /// the API and `sitetally sites` show it; the store's count where nothing decided.
    pub counted: u64,
    /// True when `counted` is exact (below the sketch's exact threshold).
    pub exact: bool,
    /// One-sigma error of an estimate (0 when exact).
    pub sigma: f64,
    /// Half-width of the error band at the reconciler's `error_band_sigmas` (0 when exact).
    pub error_bound: u64,
    /// Distinct devices the simulator emitted for this site (ground truth).
    pub true_devices: u64,
    /// Devices the simulated world holds for this site (reached once the planned schedule
    /// is complete).
    pub planned_devices: u64,
    /// Licence the site holds (`L`, `2xXL`), none for Enterprise IoT fleets.
    pub licensed: Option<String>,
    /// The smallest licence covering the count, as the reconciler decided it.
    pub required: Option<String>,
    /// Reconciler status code (`WITHIN_TIER`, `NEAR_LIMIT`, `OVER_TIER`, ...); for an
    /// Enterprise IoT fleet without an OT decision, the tenant's Enterprise IoT status.
    pub status: String,
    /// The status with its details (`OVER_TIER (buy XL)`).
    pub status_detail: String,
    /// Enterprise IoT fleets only: the reconciler's OT-site status of the location, when
    /// OT-category devices were seen there (`UNLICENSED`: no OT licence covers them).
    pub site_status: Option<String>,
    /// The simulator grew this site past its licence.
    pub grown: bool,
}

impl SiteRow {
    pub fn over_tier(&self) -> bool {
        self.status == "OVER_TIER"
    }

    /// `counted` agrees with the truth: equal when exact, within the band otherwise.
    pub fn count_ok(&self) -> bool {
        if self.exact {
            self.counted == self.true_devices
        } else {
            self.counted.abs_diff(self.true_devices) <= self.error_bound
        }
    }
}

/// Everything the demo reports at the end.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub seed: u64,
    /// Wall time of the whole run, milliseconds.
    pub elapsed_ms: u64,
    /// Messages the simulator sent and the broker acknowledged (all kinds).
    pub events_sent: u64,
    /// Malformed messages among them (ingest dead-letters these).
    pub malformed_sent: u64,
    /// The simulator emitted its full planned schedule (every device of every day).
    pub schedule_complete: bool,
    /// Ingest committed every message produced before the summary was taken.
    pub caught_up: bool,
    /// What ingest did in this run.
    pub ingest: IngestReport,
    /// Alerts raised (status transitions) in this run, all delivered to the demo's
    /// in-memory sink.
    pub alerts_raised: usize,
    /// Sites with a count in storage (this and earlier runs on the data directory).
    pub sites_counted: usize,
    pub sites: Vec<SiteRow>,
    /// Tenant-wide decisions (Enterprise IoT coverage), as `(tenant, status detail)`.
    pub tenants: Vec<TenantRow>,
}

/// A tenant-wide decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantRow {
    pub tenant: String,
    pub subject: String,
    pub count: u64,
    pub status: String,
    pub status_detail: String,
}

fn site_key(tenant: &str, site: &str) -> (String, String) {
    (tenant.to_string(), site.to_string())
}

/// One row per site of the ground truth (world order), joined with the store's counts
/// and the reconciler's decisions; error bands at `error_sigmas` (the reconciler's
/// `error_band_sigmas`).
pub fn build_rows(
    truth: &GroundTruth,
    counts: &[SiteCount],
    decisions: &[Decision],
    error_sigmas: f64,
) -> Vec<SiteRow> {
    let counts: HashMap<(String, String), &SiteCount> = counts
        .iter()
        .map(|c| (site_key(&c.tenant, &c.site), c))
        .collect();
    let mut site_decisions: HashMap<(String, String), &Decision> = HashMap::new();
    let mut eiot: HashMap<&str, &Decision> = HashMap::new();
    for d in decisions {
        match &d.subject {
            Subject::OtSite { tenant, site } => {
                site_decisions.insert(site_key(tenant, site), d);
            }
            Subject::EnterpriseIot { tenant } => {
                eiot.insert(tenant, d);
            }
            _ => {}
        }
    }
    truth
        .sites
        .iter()
        .map(|t| {
            let key = site_key(&t.tenant, &t.site);
            let ot_decision = site_decisions.get(&key).copied();
            // One answer: the count an OT decision rested on is what every surface shows.
            let count = ot_decision
                .map(|d| d.count)
                .or_else(|| counts.get(&key).map(|c| c.count))
                .unwrap_or(Count::exact(0));
            let licensed = t.licence.as_ref().map(|l| match l.count {
                1 => l.tier.clone(),
                n => format!("{n}x{}", l.tier),
            });
            // An Enterprise IoT fleet is licensed at tenant level (E5 + standalone): its
            // status is the tenant's Enterprise IoT status; an OT-site decision about it
            // (OT-category devices seen there) is kept as `site_status`.
            let (decision, site_status) = match t.kind {
                SiteKind::EnterpriseIot => (
                    eiot.get(t.tenant.as_str()).copied().or(ot_decision),
                    ot_decision.map(|d| d.status().to_string()),
                ),
                SiteKind::Ot => (ot_decision, None),
            };
            let (status, mut status_detail, required) = match decision {
                Some(d) => (
                    d.status().code().to_string(),
                    match &d.subject {
                        Subject::EnterpriseIot { .. } => format!("Enterprise IoT: {}", d.status()),
                        _ => d.status().to_string(),
                    },
                    d.outcome.required_tier.map(|r| r.to_string()),
                ),
                None => (
                    "NOT_DECIDED".to_string(),
                    "not decided yet".to_string(),
                    None,
                ),
            };
            if let (Some(s), Some(d)) = (&site_status, decision) {
                if matches!(d.subject, Subject::EnterpriseIot { .. }) {
                    status_detail.push_str(&format!("; OT devices here: {s}"));
                }
            }
            SiteRow {
                tenant: t.tenant.clone(),
                site: t.site.clone(),
                kind: t.kind,
                counted: count.value,
                exact: count.is_exact(),
                sigma: count.sigma,
                error_bound: count.error_bound(error_sigmas),
                true_devices: t.devices,
                planned_devices: t.planned_devices,
                licensed,
                required,
                status,
                status_detail,
                site_status,
                grown: t.grown,
            }
        })
        .collect()
}

/// Tenant-wide decisions (everything but OT sites).
pub fn tenant_rows(decisions: &[Decision]) -> Vec<TenantRow> {
    decisions
        .iter()
        .filter(|d| !matches!(d.subject, Subject::OtSite { .. }))
        .map(|d| TenantRow {
            tenant: d.subject.tenant().to_string(),
            subject: d.subject.label(),
            count: d.count.value,
            status: d.status().code().to_string(),
            status_detail: d.status().to_string(),
        })
        .collect()
}

impl DemoSummary {
    pub fn render(&self, format: SummaryFormat) -> String {
        match format {
            SummaryFormat::Json => {
                let mut s = serde_json::to_string_pretty(self).expect("summary serializes");
                s.push('\n');
                s
            }
            SummaryFormat::Table => self.table(),
        }
    }

    /// A plain-text table, one line per site, then totals.
    pub fn table(&self) -> String {
        let header = [
            "TENANT", "SITE", "KIND", "COUNTED", "TRUE", "LICENSED", "STATUS",
        ];
        let rows: Vec<[String; 7]> = self
            .sites
            .iter()
            .map(|r| {
                let counted = if r.exact {
                    format!("{} exact", r.counted)
                } else {
                    format!("{} ±{}", r.counted, r.error_bound)
                };
                let mut status = r.status_detail.clone();
                if r.grown {
                    status.push_str("  [grown by the simulator]");
                }
                // Names came from sensors: escape what would rewrite the terminal.
                [
                    printable(&r.tenant).into_owned(),
                    printable(&r.site).into_owned(),
                    match r.kind {
                        SiteKind::Ot => "OT".into(),
                        SiteKind::EnterpriseIot => "EIoT".into(),
                    },
                    counted,
                    r.true_devices.to_string(),
                    r.licensed.clone().unwrap_or_else(|| "-".into()),
                    status,
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w.saturating_sub(cell.chars().count());
                // Numbers right-aligned, text left-aligned; no trailing spaces.
                let numeric = i == 3 || i == 4;
                if i > 0 {
                    l.push_str("  ");
                }
                if numeric {
                    l.push_str(&" ".repeat(pad));
                    l.push_str(cell);
                } else {
                    l.push_str(cell);
                    if i + 1 < cells.len() {
                        l.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&mut out, &header.map(String::from));
        for row in &rows {
            line(&mut out, row);
        }
        for t in &self.tenants {
            let _ = writeln!(
                out,
                "{} {}: {} devices, {}",
                printable(&t.tenant),
                t.subject,
                t.count,
                t.status_detail
            );
        }
        let over = self.sites.iter().filter(|r| r.over_tier()).count();
        let mismatched = self.sites.iter().filter(|r| !r.count_ok()).count();
        let _ = writeln!(
            out,
            "\n{} sites, {} over tier, {} alerts raised; {} events sent ({} malformed, dead-lettered: {}) in {:.1}s",
            self.sites.len(),
            over,
            self.alerts_raised,
            self.events_sent,
            self.malformed_sent,
            self.ingest.dead_letters_published,
            self.elapsed_ms as f64 / 1000.0,
        );
        let _ = writeln!(
            out,
            "counts vs simulator truth: {}",
            if mismatched == 0 {
                "all agree (exact counts equal, estimates within ±3 sigma)".to_string()
            } else {
                format!("{mismatched} sites disagree")
            }
        );
        if !self.schedule_complete {
            out.push_str(
                "note: the simulator had not finished its planned schedule; run longer (--duration) or faster (--rate) to see every site at full size\n",
            );
        }
        if !self.caught_up {
            out.push_str(
                "note: ingest had not committed everything produced when the summary was taken\n",
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitetally_licensing::Settings;
    use sitetally_sensor_sim::{Licence, SiteTruth};

    fn truth_site(
        tenant: &str,
        site: &str,
        devices: u64,
        licence: Option<Licence>,
        grown: bool,
    ) -> SiteTruth {
        SiteTruth {
            tenant: tenant.into(),
            site: site.into(),
            kind: if licence.is_some() {
                SiteKind::Ot
            } else {
                SiteKind::EnterpriseIot
            },
            devices,
            by_category: Default::default(),
            by_day: Default::default(),
            planned_devices: devices,
            over_tier: licence
                .as_ref()
                .is_some_and(|l| devices > l.capacity as u64),
            licence,
            grown,
        }
    }

    fn truth() -> GroundTruth {
        GroundTruth {
            seed: 7,
            now_ms: 0,
            messages: 100,
            valid: 90,
            not_a_device: 1,
            malformed: Default::default(),
            malformed_by_reason: Default::default(),
            sites: vec![
                truth_site(
                    "acme",
                    "plant-001",
                    80,
                    Some(Licence::for_devices(80)),
                    false,
                ),
                truth_site(
                    "acme",
                    "plant-002",
                    1_120,
                    Some(Licence::for_devices(900)),
                    true,
                ),
                truth_site("acme", "campus-003", 40, None, false),
                truth_site(
                    "acme",
                    "refinery-004",
                    6_000,
                    Some(Licence::for_devices(6_000)),
                    false,
                ),
            ],
        }
    }

    /// The reconciler's default error band.
    const SIGMAS: f64 = 3.0;

    fn count(site: &str, count: u64, exact: bool, sigma: f64) -> SiteCount {
        SiteCount {
            tenant: "acme".into(),
            site: site.into(),
            count: if exact {
                sitetally_core::Count::exact(count)
            } else {
                sitetally_core::Count::estimated(count, sigma)
            },
        }
    }

    /// Decisions as the reconciler makes them, from a licence book matching `truth()`.
    async fn decisions(counts: &[SiteCount]) -> Vec<Decision> {
        use sitetally_licensing::count::StaticCounts;
        let book = sitetally_licensing::LicenceBook::from_toml_str(
            r#"
[[tenants]]
id = "acme"
  [tenants.enterprise_iot]
  e5_licences = 100
  [[tenants.sites]]
  id = "plant-001"
    [[tenants.sites.licences]]
    tier = "XS"
    kind = "paid"
    start = "2026-01-01"
  [[tenants.sites]]
  id = "plant-002"
    [[tenants.sites.licences]]
    tier = "L"
    kind = "paid"
    start = "2026-01-01"
  [[tenants.sites]]
  id = "refinery-004"
    [[tenants.sites.licences]]
    tier = "XL"
    quantity = 2
    kind = "paid"
    start = "2026-01-01"
"#,
            &Settings::default(),
        )
        .unwrap();
        let source = StaticCounts {
            counts: counts
                .iter()
                .map(|c| sitetally_licensing::CategoryCount {
                    tenant: c.tenant.clone(),
                    site: c.site.clone(),
                    category: if c.site.starts_with("campus") {
                        sitetally_core::DeviceCategory::Iot
                    } else {
                        sitetally_core::DeviceCategory::Ot
                    },
                    count: c.count,
                })
                .collect(),
            ..Default::default()
        };
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .to_utc();
        sitetally_licensing::engine::decide_all(
            &book,
            &Settings::default(),
            &source,
            &Default::default(),
            now,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn rows_join_truth_counts_and_decisions() {
        let counts = [
            count("plant-001", 80, true, 0.0),
            count("plant-002", 1_120, true, 0.0),
            count("campus-003", 40, true, 0.0),
            count("refinery-004", 6_030, false, 48.6),
        ];
        let d = decisions(&counts).await;
        let rows = build_rows(&truth(), &counts, &d, SIGMAS);
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(SiteRow::count_ok), "{rows:#?}");
        assert_eq!(rows[0].status, "WITHIN_TIER");
        assert_eq!(rows[0].licensed.as_deref(), Some("XS"));
        assert_eq!(rows[1].status, "OVER_TIER");
        assert_eq!(rows[1].required.as_deref(), Some("XL"));
        assert!(rows[1].grown && rows[1].over_tier());
        assert_eq!(rows[2].licensed, None);
        assert_eq!(rows[2].status_detail, "Enterprise IoT: WITHIN_TIER");
        assert_eq!(
            (rows[3].error_bound, rows[3].licensed.as_deref()),
            (146, Some("2xXL"))
        );
        assert!(!rows[3].exact);
    }

    #[test]
    fn count_checks_are_exact_below_the_threshold_and_banded_above() {
        let rows = build_rows(
            &truth(),
            &[
                count("plant-001", 79, true, 0.0),
                count("refinery-004", 6_200, false, 48.6),
            ],
            &[],
            SIGMAS,
        );
        assert!(!rows[0].count_ok(), "an exact count must equal the truth");
        assert!(!rows[3].count_ok(), "6200 is outside 6000 ± 146");
        assert_eq!(rows[1].counted, 0, "no count stored yet");
        assert_eq!(rows[1].status, "NOT_DECIDED");
    }

    fn summary(rows: Vec<SiteRow>) -> DemoSummary {
        DemoSummary {
            seed: 7,
            elapsed_ms: 21_500,
            events_sent: 400_000,
            malformed_sent: 4_000,
            schedule_complete: true,
            caught_up: true,
            ingest: IngestReport {
                dead_letters_published: 4_000,
                ..Default::default()
            },
            alerts_raised: 3,
            sites_counted: rows.len(),
            sites: rows,
            tenants: vec![],
        }
    }

    #[tokio::test]
    async fn table_and_json_render_every_site() {
        let counts = [
            count("plant-001", 80, true, 0.0),
            count("plant-002", 1_120, true, 0.0),
            count("campus-003", 40, true, 0.0),
            count("refinery-004", 6_030, false, 48.6),
        ];
        let d = decisions(&counts).await;
        let mut s = summary(build_rows(&truth(), &counts, &d, SIGMAS));
        s.tenants = tenant_rows(&d);
        let table = s.render(SummaryFormat::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("TENANT") && lines[0].contains("COUNTED"),
            "{table}"
        );
        assert!(
            lines[2].contains("plant-002") && lines[2].contains("1120 exact"),
            "{table}"
        );
        assert!(
            lines[2].contains("OVER_TIER (buy XL)  [grown by the simulator]"),
            "{table}"
        );
        assert!(
            lines[4].contains("6030 ±146") && lines[4].contains("2xXL"),
            "{table}"
        );
        assert!(table.contains("acme (Enterprise IoT)"), "{table}");
        assert!(
            table.contains("4 sites, 1 over tier, 3 alerts raised"),
            "{table}"
        );
        assert!(table.contains("all agree"), "{table}");
        assert!(
            lines.iter().all(|l| !l.ends_with(' ')),
            "no trailing spaces"
        );
        // Columns line up: COUNTED is right-aligned under its header.
        let end = lines[0].find("COUNTED").unwrap() + "COUNTED".len();
        assert!(
            lines[1..5]
                .iter()
                .all(|l| l.chars().nth(end - 1).is_some_and(|c| c != ' ')),
            "{table}"
        );

        let json: serde_json::Value = serde_json::from_str(&s.render(SummaryFormat::Json)).unwrap();
        assert_eq!(json["sites"].as_array().unwrap().len(), 4);
        assert_eq!(json["sites"][1]["status"], "OVER_TIER");
        assert_eq!(json["sites"][3]["kind"], "ot");
        assert_eq!(json["sites"][3]["error_bound"], 146);
        assert_eq!(json["ingest"]["dead_letters_published"], 4_000);
    }

    #[test]
    fn incomplete_runs_say_so() {
        let mut s = summary(build_rows(&truth(), &[], &[], SIGMAS));
        s.schedule_complete = false;
        s.caught_up = false;
        let t = s.table();
        assert!(t.contains("had not finished its planned schedule"), "{t}");
        assert!(t.contains("ingest had not committed"), "{t}");
    }
}
