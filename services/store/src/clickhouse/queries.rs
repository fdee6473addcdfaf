//! Every statement the ClickHouse store sends at runtime, in one list ([`ALL`]): the store
//! builds its SQL only from here, and `sitetally migrate --print-queries` prints the list
//! so the chdb test (`services/store/tests/chdb/`) runs each one on a current ClickHouse
//! and on the 18.16 rendering. Values are bound with the client's `?` (the test fills
//! them with literals); only `{db}`, the enum-code count filter and row counts are spliced.
//! Sightings are written with the client's RowBinary insert (`INSERT INTO sightings
//! FORMAT RowBinary`), which is not SQL text and not listed.

use crate::CountFilter;

/// One runtime statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    Version,
    DedupProbe,
    Ping,
    SiteCounts { by_tenant: bool },
    ExactSiteCount,
    TenantCount,
    ExactTenantCount,
    DailyCounts,
    AlertStates,
    NewestAlertState,
    SaveAlertState,
    Alerts,
    LatestDecisions,
    RecordRuns { rows: usize },
    RecordAlerts { rows: usize },
    PutLicences { rows: usize },
    LicenceDocuments,
    SightingRows,
    DistinctSightings,
    RunsById,
}

/// Every statement, each once (row counts of multi-row inserts as one row).
pub const ALL: &[Query] = &[
    Query::Version,
    Query::DedupProbe,
    Query::Ping,
    Query::SiteCounts { by_tenant: false },
    Query::SiteCounts { by_tenant: true },
    Query::ExactSiteCount,
    Query::TenantCount,
    Query::ExactTenantCount,
    Query::DailyCounts,
    Query::AlertStates,
    Query::NewestAlertState,
    Query::SaveAlertState,
    Query::Alerts,
    Query::LatestDecisions,
    Query::RecordRuns { rows: 1 },
    Query::RecordAlerts { rows: 1 },
    Query::PutLicences { rows: 1 },
    Query::LicenceDocuments,
    Query::SightingRows,
    Query::DistinctSightings,
    Query::RunsById,
];

/// `category IN (...)` / agent-managed filter, built only from enum codes (never user text).
pub(crate) fn filter_sql(filter: &CountFilter) -> String {
    let mut sql = String::new();
    if !filter.categories.is_empty() {
        let codes: Vec<String> = filter
            .categories
            .iter()
            .map(|c| format!("'{}'", c.as_str()))
            .collect();
        sql.push_str(&format!(" AND category IN ({})", codes.join(",")));
    }
    if !filter.include_agent_managed {
        sql.push_str(" AND agent_managed = 0");
    }
    sql
}

/// `(?, ?, …), (?, …)` for `rows` rows of `columns` values.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

impl Query {
    /// A stable name (the chdb test's key).
    pub fn name(self) -> String {
        match self {
            Query::SiteCounts { by_tenant: true } => "site_counts_of_tenant".into(),
            Query::SiteCounts { by_tenant: false } => "site_counts".into(),
            Query::RecordRuns { .. } => "record_runs".into(),
            Query::RecordAlerts { .. } => "record_alerts".into(),
            Query::PutLicences { .. } => "put_licences".into(),
            other => {
                let debug = format!("{other:?}");
                let mut name = String::new();
                for (i, c) in debug.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        name.push('_');
                    }
                    name.push(c.to_ascii_lowercase());
                }
                name
            }
        }
    }

    /// The SQL sent for database `db`; `filter` is used by the count queries only.
    pub fn sql(self, db: &str, filter: &CountFilter) -> String {
        let f = filter_sql(filter);
        match self {
            Query::Version => "SELECT version()".into(),
            Query::DedupProbe => "SELECT count() FROM system.merge_tree_settings WHERE name = 'non_replicated_deduplication_window'".into(),
            Query::Ping => "SELECT 1".into(),
            // Whole days from the sketches, plus the billing window's boundary day from the
            // sightings seen since its start instant, as a state that merges with them
            // (DayRange::window). Binds: whole days, [tenant], boundary day and second,
            // [tenant]; a range without a boundary binds day 0 (nothing stored).
            Query::SiteCounts { by_tenant } => {
                let t = if by_tenant { "AND tenant = ?" } else { "" };
                format!(
                    "SELECT tenant, site, toUInt64(uniqCombinedMerge(devices)) AS count FROM (\
                     SELECT tenant, site, devices FROM {db}.site_devices_daily \
                     WHERE day >= toDate(?) AND day <= toDate(?) {t} {f} \
                     UNION ALL SELECT tenant, site, uniqCombinedState(device_key) AS devices FROM {db}.sightings \
                     WHERE day = toDate(?) AND seen_at >= toDateTime(?) {t} {f} GROUP BY tenant, site\
                     ) GROUP BY tenant, site ORDER BY tenant, site"
                )
            }
            Query::ExactSiteCount => format!(
                "SELECT toUInt64(uniqExact(device_key)) FROM {db}.sightings \
                 WHERE tenant = ? AND site = ? AND ((day >= toDate(?) AND day <= toDate(?)) \
                 OR (day = toDate(?) AND seen_at >= toDateTime(?))) {f}"
            ),
            // The device key does not include the site: merging every site's sketch counts a
            // device seen at several sites once.
            Query::TenantCount => format!(
                "SELECT toUInt64(uniqCombinedMerge(devices)) FROM (\
                 SELECT devices FROM {db}.site_devices_daily \
                 WHERE tenant = ? AND day >= toDate(?) AND day <= toDate(?) {f} \
                 UNION ALL SELECT uniqCombinedState(device_key) AS devices FROM {db}.sightings \
                 WHERE tenant = ? AND day = toDate(?) AND seen_at >= toDateTime(?) {f})"
            ),
            Query::ExactTenantCount => format!(
                "SELECT toUInt64(uniqExact(device_key)) FROM {db}.sightings \
                 WHERE tenant = ? AND ((day >= toDate(?) AND day <= toDate(?)) \
                 OR (day = toDate(?) AND seen_at >= toDateTime(?))) {f}"
            ),
            // The sketch table keeps agent-managed devices in their own sketches, so excluding
            // them is a filter on the key, not a recount.
            Query::DailyCounts => format!(
                "SELECT toUInt16(day) AS day_number, toInt8(category) AS category_code, toUInt64(uniqCombinedMerge(devices)) AS count \
                 FROM {db}.site_devices_daily WHERE tenant = ? AND site = ? AND day >= toDate(?) AND day <= toDate(?){f} \
                 GROUP BY day, category ORDER BY day, category_code"
            ),
            Query::AlertStates => {
                format!("SELECT argMax(state, saved_ms) FROM {db}.alert_state GROUP BY subject")
            }
            Query::NewestAlertState => {
                format!("SELECT max(saved_ms) FROM {db}.alert_state WHERE subject = ?")
            }
            Query::SaveAlertState => format!(
                "INSERT INTO {db}.alert_state (subject, tenant, state, saved_ms) VALUES (?, ?, ?, ?)"
            ),
            Query::Alerts => format!(
                "SELECT any(alert) FROM {db}.alert_log WHERE tenant = ? AND raised_at >= toDateTime(?) AND raised_at <= toDateTime(?) \
                 GROUP BY idempotency_key ORDER BY max(raised_at) DESC, idempotency_key LIMIT ?"
            ),
            // run_id is the run's time to the millisecond, so its maximum is the latest run.
            Query::LatestDecisions => format!(
                "SELECT decision FROM {db}.reconciliation_runs WHERE tenant = ? AND run_id = \
                 (SELECT max(run_id) FROM {db}.reconciliation_runs WHERE tenant = ?) ORDER BY subject"
            ),
            Query::RecordRuns { rows } => format!(
                "INSERT INTO {db}.reconciliation_runs (run_at, run_id, tenant, site, subject, status, device_count, count_method, \
                 error_bound, exact_fetched, uncertain, licensed_tier, required_tier, utilisation, decision) VALUES {}",
                placeholders(rows, 15)
            ),
            Query::RecordAlerts { rows } => format!(
                "INSERT INTO {db}.alert_log (raised_at, idempotency_key, tenant, site, subject, old_status, new_status, device_count, \
                 count_method, error_bound, licensed_tier, required_tier, message, alert) VALUES {}",
                placeholders(rows, 14)
            ),
            Query::PutLicences { rows } => format!(
                "INSERT INTO {db}.licences (tenant, document, updated_ms) VALUES {}",
                placeholders(rows, 3)
            ),
            Query::LicenceDocuments => format!(
                "SELECT tenant, argMax(document, updated_ms) FROM {db}.licences GROUP BY tenant ORDER BY tenant"
            ),
            Query::SightingRows => format!("SELECT count() FROM {db}.sightings"),
            Query::DistinctSightings => format!(
                "SELECT uniqExact(tenant, site, day, device_key) FROM {db}.sightings"
            ),
            Query::RunsById => format!(
                "SELECT run_id, count() FROM {db}.reconciliation_runs GROUP BY run_id ORDER BY run_id"
            ),
        }
    }
}

/// The list `sitetally migrate --print-queries` prints: every statement of [`ALL`] by
/// name, the count queries also with a filter (OT and IoT, no agent-managed devices) under
/// `NAME:filtered`.
pub fn catalogue(db: &str) -> Vec<(String, String)> {
    use sitetally_core::DeviceCategory;
    let filtered = CountFilter {
        categories: vec![DeviceCategory::Ot, DeviceCategory::Iot],
        include_agent_managed: false,
    };
    let mut out = Vec::new();
    for q in ALL {
        let all = q.sql(db, &CountFilter::all());
        let with_filter = q.sql(db, &filtered);
        if with_filter != all {
            out.push((format!("{}:filtered", q.name()), with_filter));
        }
        out.push((q.name(), all));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_row_and_column() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholders(1, 1), "(?)");
    }

    #[test]
    fn every_query_is_listed_once_by_a_distinct_name() {
        let names: std::collections::HashSet<String> = ALL.iter().map(|q| q.name()).collect();
        assert_eq!(names.len(), ALL.len());
        assert!(names.contains("exact_site_count") && names.contains("site_counts_of_tenant"));
        let c = catalogue("t1");
        assert!(c.iter().any(|(n, s)| n == "daily_counts:filtered"
            && s.contains("category IN ('OT','IOT') AND agent_managed = 0")));
        assert!(c.iter().all(|(_, s)| !s.contains('{')));
    }
}
