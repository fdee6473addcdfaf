//! The reconciler's memory in ClickHouse (migrations 004–006):
//! - `alert_state`: per-subject alert state, so a reconciler restarted anywhere (another
//!   host, a new container) resumes its hysteresis and outbox and sends no alert twice;
//! - `alert_log`: every alert raised, for the alert-history API and plain SQL;
//! - `reconciliation_runs`: every decision of every run, for history and trend queries.
//!
//! Every value is bound, never spliced into SQL.
//!
//! Beside the embedded store the alert log and the latest run's decisions are files in its
//! data directory ([`DataDirHistory`]).

use crate::alert::{Alert, AlertStateStore, StateError, SubjectState};
use crate::decision::Decision;
use crate::reconciler::RunReport;
use crate::settings::Settings;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt::Write;

/// Where finished runs go (decisions and the alerts they raised).
#[async_trait::async_trait]
pub trait RunHistory: Send + Sync {
    async fn record_run(&self, report: &RunReport, settings: &Settings) -> Result<(), StateError>;
}

/// The alerts raised, for the alert-history API.
#[async_trait::async_trait]
pub trait AlertLog: Send + Sync {
    /// Alerts raised for `tenant` between `from` and `to` (inclusive), newest first, at
    /// most `limit`.
    async fn alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Alert>, StateError>;
}

/// The decisions of past runs, for the decisions API.
#[async_trait::async_trait]
pub trait DecisionHistory: Send + Sync {
    /// The decisions about `tenant` of the latest run that decided on it, with that run's
    /// time; None before any run.
    async fn latest_decisions(
        &self,
        tenant: &str,
    ) -> Result<Option<(DateTime<Utc>, Vec<Decision>)>, StateError>;
}

/// Alert state, alert log and run history in one ClickHouse database.
pub struct ClickHouseHistory {
    client: clickhouse::Client,
    db: String,
}

fn unavailable(e: clickhouse::error::Error) -> StateError {
    StateError::Unavailable(e.to_string())
}

/// `(?, ?, …), (?, …)` for `rows` rows of `columns` values.
fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

impl ClickHouseHistory {
    /// Uses the store's connection and database (run `migrate` first).
    pub fn new(store: &sitetally_store::clickhouse::ClickHouseStore) -> Self {
        Self {
            client: store.client().clone(),
            db: store.database().to_string(),
        }
    }
}

#[async_trait::async_trait]
impl AlertStateStore for ClickHouseHistory {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        let sql = format!(
            "SELECT argMax(state, saved_ms) FROM {}.alert_state GROUP BY subject",
            self.db
        );
        let docs: Vec<String> = self
            .client
            .query(&sql)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        docs.iter()
            .map(|d| {
                let s: SubjectState = serde_json::from_str(d)
                    .map_err(|e| StateError::Corrupt(format!("alert_state: {e}")))?;
                Ok((s.subject.key(), s))
            })
            .collect()
    }

    async fn save(&self, state: &SubjectState) -> Result<(), StateError> {
        let doc = serde_json::to_string(state).map_err(|e| StateError::Corrupt(e.to_string()))?;
        // The newest save wins: stamp it strictly after the subject's newest, so two saves
        // within one millisecond still replace each other in order.
        let sql = format!(
            "INSERT INTO {}.alert_state (subject, tenant, state, saved_ms) VALUES (?, ?, ?, ?)",
            self.db
        );
        let saved_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let newest: u64 = self
            .client
            .query(&format!(
                "SELECT max(saved_ms) FROM {}.alert_state WHERE subject = ?",
                self.db
            ))
            .bind(state.subject.key())
            .fetch_one()
            .await
            .map_err(unavailable)?;
        self.client
            .query(&sql)
            .bind(state.subject.key())
            .bind(state.subject.tenant())
            .bind(doc)
            .bind(saved_ms.max(newest + 1))
            .execute()
            .await
            .map_err(unavailable)
    }
}

#[async_trait::async_trait]
impl AlertLog for ClickHouseHistory {
    async fn alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Alert>, StateError> {
        let sql = format!(
            "SELECT any(alert) FROM {}.alert_log WHERE tenant = ? AND raised_at >= toDateTime(?) AND raised_at <= toDateTime(?) \
             GROUP BY idempotency_key ORDER BY max(raised_at) DESC, idempotency_key LIMIT ?",
            self.db
        );
        let docs: Vec<String> = self
            .client
            .query(&sql)
            .bind(tenant)
            .bind(from.timestamp())
            .bind(to.timestamp())
            .bind(limit)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        docs.iter()
            .map(|d| {
                serde_json::from_str(d).map_err(|e| StateError::Corrupt(format!("alert_log: {e}")))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl DecisionHistory for ClickHouseHistory {
    async fn latest_decisions(
        &self,
        tenant: &str,
    ) -> Result<Option<(DateTime<Utc>, Vec<Decision>)>, StateError> {
        // run_id is the run's time to the millisecond, so its maximum is the latest run.
        let sql = format!(
            "SELECT decision FROM {db}.reconciliation_runs WHERE tenant = ? AND run_id = \
             (SELECT max(run_id) FROM {db}.reconciliation_runs WHERE tenant = ?) ORDER BY subject",
            db = self.db
        );
        let docs: Vec<String> = self
            .client
            .query(&sql)
            .bind(tenant)
            .bind(tenant)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        let decisions = docs
            .iter()
            .map(|d| {
                serde_json::from_str::<Decision>(d)
                    .map_err(|e| StateError::Corrupt(format!("reconciliation_runs: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(decisions
            .first()
            .map(|d| d.decided_at)
            .map(|at| (at, decisions)))
    }
}

#[async_trait::async_trait]
impl RunHistory for ClickHouseHistory {
    async fn record_run(&self, report: &RunReport, settings: &Settings) -> Result<(), StateError> {
        let run_at = report.decided_at.timestamp();
        let run_id = format!("{}", report.decided_at.format("%Y%m%dT%H%M%S%.3fZ"));
        if !report.decisions.is_empty() {
            let mut sql = String::new();
            let _ = write!(
                sql,
                "INSERT INTO {}.reconciliation_runs (run_at, run_id, tenant, site, subject, status, device_count, count_method, \
                 error_bound, exact_fetched, uncertain, licensed_tier, required_tier, utilisation, decision) VALUES {}",
                self.db,
                placeholders(report.decisions.len(), 15)
            );
            let mut q = self.client.query(&sql);
            for d in &report.decisions {
                // The alert projection names the tiers and the count the same way alerts do.
                let a = Alert::from_decision(d, None, settings);
                let doc =
                    serde_json::to_string(d).map_err(|e| StateError::Corrupt(e.to_string()))?;
                q = q
                    .bind(run_at)
                    .bind(&run_id)
                    .bind(&a.tenant)
                    .bind(a.site.as_deref().unwrap_or(""))
                    .bind(d.subject.key())
                    .bind(&a.new_status)
                    .bind(a.device_count)
                    .bind(a.count_method.as_str())
                    .bind(a.error_bound)
                    .bind(u8::from(d.exact_fetched))
                    .bind(u8::from(d.uncertain))
                    .bind(a.licensed_tier.as_deref().unwrap_or(""))
                    .bind(a.required_tier.as_deref().unwrap_or(""))
                    .bind(d.utilisation.unwrap_or(0.0))
                    .bind(doc);
            }
            q.execute().await.map_err(unavailable)?;
        }
        if !report.alerts.is_empty() {
            let sql = format!(
                "INSERT INTO {}.alert_log (raised_at, idempotency_key, tenant, site, subject, old_status, new_status, device_count, \
                 count_method, error_bound, licensed_tier, required_tier, message, alert) VALUES {}",
                self.db,
                placeholders(report.alerts.len(), 14)
            );
            let mut q = self.client.query(&sql);
            for a in &report.alerts {
                let doc =
                    serde_json::to_string(a).map_err(|e| StateError::Corrupt(e.to_string()))?;
                q = q
                    .bind(a.decided_at.timestamp())
                    .bind(&a.idempotency_key)
                    .bind(&a.tenant)
                    .bind(a.site.as_deref().unwrap_or(""))
                    .bind(a.subject.key())
                    .bind(&a.old_status)
                    .bind(&a.new_status)
                    .bind(a.device_count)
                    .bind(a.count_method.as_str())
                    .bind(a.error_bound)
                    .bind(a.licensed_tier.as_deref().unwrap_or(""))
                    .bind(a.required_tier.as_deref().unwrap_or(""))
                    .bind(&a.message)
                    .bind(doc);
            }
            q.execute().await.map_err(unavailable)?;
        }
        Ok(())
    }
}

/// Where a deployment keeps the reconciler's memory, as the CLI wires it: everything in
/// ClickHouse, or beside the embedded store the alert log and the latest run's decisions
/// ([`DataDirHistory`]; its alert state is the `--alert-state` file).
#[derive(Clone, Default)]
pub struct ReconcilerMemory {
    pub alert_state: Option<std::sync::Arc<dyn AlertStateStore>>,
    pub alert_log: Option<std::sync::Arc<dyn AlertLog>>,
    pub runs: Option<std::sync::Arc<dyn RunHistory>>,
    pub decisions: Option<std::sync::Arc<dyn DecisionHistory>>,
}

impl ReconcilerMemory {
    /// Alert state, alert log and run history in the store's ClickHouse database.
    pub fn clickhouse(store: &sitetally_store::clickhouse::ClickHouseStore) -> Self {
        let h = std::sync::Arc::new(ClickHouseHistory::new(store));
        Self {
            alert_state: Some(h.clone()),
            alert_log: Some(h.clone()),
            runs: Some(h.clone()),
            decisions: Some(h),
        }
    }

    /// The alert log and the latest run's decisions in `data_dir`, beside the embedded
    /// store ([`DataDirHistory`]).
    pub fn embedded(data_dir: &std::path::Path) -> Self {
        let h = std::sync::Arc::new(DataDirHistory::new(data_dir));
        Self {
            alert_state: None,
            alert_log: Some(h.clone()),
            runs: Some(h.clone()),
            decisions: Some(h),
        }
    }
}

/// File name of the embedded store's alert log, in its data directory.
pub const ALERT_LOG_FILE: &str = "alert_log.jsonl";
/// File name of the latest run's decisions, in the embedded store's data directory.
pub const LATEST_RUN_FILE: &str = "latest_run.json";

/// The reconciler's history beside the embedded store, in its data directory:
/// - [`ALERT_LOG_FILE`]: one JSON alert per line, appended by each run in one write (the
///   file is opened for append, so concurrent runs do not interleave lines). Reading
///   scans the file: fine for the alert volume of one deployment.
/// - [`LATEST_RUN_FILE`]: the decisions of the latest run, replaced atomically (temp file +
///   rename) by each run. Older runs' decisions are not kept.
#[derive(Debug, Clone)]
pub struct DataDirHistory {
    dir: std::path::PathBuf,
    alert_log: std::path::PathBuf,
    latest_run: std::path::PathBuf,
}

/// What [`LATEST_RUN_FILE`] holds: written from the run's borrowed decisions, read into
/// owned ones.
#[derive(serde::Serialize, serde::Deserialize)]
struct LatestRun<D> {
    decided_at: DateTime<Utc>,
    decisions: D,
}

impl DataDirHistory {
    pub fn new(data_dir: impl AsRef<std::path::Path>) -> Self {
        let dir = data_dir.as_ref();
        Self {
            dir: dir.to_path_buf(),
            alert_log: dir.join(ALERT_LOG_FILE),
            latest_run: dir.join(LATEST_RUN_FILE),
        }
    }

    /// Runs file work on the blocking pool; `what` names it if the task itself fails.
    async fn off_thread<T: Send + 'static>(
        what: &str,
        work: impl FnOnce() -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| StateError::Unavailable(format!("{what}: {e}")))?
    }

    fn io_error(path: &std::path::Path, e: std::io::Error) -> StateError {
        StateError::Unavailable(format!("{}: {e}", path.display()))
    }

    /// Replaces [`LATEST_RUN_FILE`] with `doc` (temp file + rename).
    fn write_latest_run(&self, doc: &[u8]) -> Result<(), StateError> {
        let tmp = self.latest_run.with_extension("json.tmp");
        std::fs::write(&tmp, doc)
            .and_then(|_| std::fs::rename(&tmp, &self.latest_run))
            .map_err(|e| Self::io_error(&self.latest_run, e))
    }

    fn read_latest_run(&self) -> Result<Option<LatestRun<Vec<Decision>>>, StateError> {
        match std::fs::read(&self.latest_run) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StateError::Corrupt(format!("{}: {e}", self.latest_run.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io_error(&self.latest_run, e)),
        }
    }

    /// Every alert in the file, oldest first. A last line without its newline is a write
    /// cut short by a crash, not an alert: it is skipped; any other bad line is an error
    /// naming it.
    fn read_all(&self) -> Result<Vec<Alert>, StateError> {
        let text = match std::fs::read_to_string(&self.alert_log) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io_error(&self.alert_log, e)),
        };
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        complete
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| {
                    StateError::Corrupt(format!("{} line {}: {e}", self.alert_log.display(), i + 1))
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl AlertLog for DataDirHistory {
    async fn alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Alert>, StateError> {
        let log = self.clone();
        let all = Self::off_thread("alert log reader", move || log.read_all()).await?;
        // Newest copy of each alert (a resent alert may be logged twice), newest first.
        let mut newest: HashMap<String, Alert> = HashMap::new();
        for a in all
            .into_iter()
            .filter(|a| a.tenant == tenant && a.decided_at >= from && a.decided_at <= to)
        {
            match newest.get(&a.idempotency_key) {
                Some(kept) if kept.decided_at >= a.decided_at => {}
                _ => {
                    newest.insert(a.idempotency_key.clone(), a);
                }
            }
        }
        let mut out: Vec<Alert> = newest.into_values().collect();
        out.sort_by(|a, b| {
            b.decided_at
                .cmp(&a.decided_at)
                .then_with(|| a.idempotency_key.cmp(&b.idempotency_key))
        });
        out.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(out)
    }
}

#[async_trait::async_trait]
impl DecisionHistory for DataDirHistory {
    async fn latest_decisions(
        &self,
        tenant: &str,
    ) -> Result<Option<(DateTime<Utc>, Vec<Decision>)>, StateError> {
        let h = self.clone();
        let run = Self::off_thread("latest run reader", move || h.read_latest_run()).await?;
        Ok(run.and_then(|run| {
            let mine: Vec<Decision> = run
                .decisions
                .into_iter()
                .filter(|d| d.subject.tenant() == tenant)
                .collect();
            (!mine.is_empty()).then_some((run.decided_at, mine))
        }))
    }
}

#[async_trait::async_trait]
impl RunHistory for DataDirHistory {
    /// Replaces the latest run's decisions and appends the run's alerts to the log.
    async fn record_run(&self, report: &RunReport, _settings: &Settings) -> Result<(), StateError> {
        let run = LatestRun {
            decided_at: report.decided_at,
            decisions: &report.decisions,
        };
        let run =
            serde_json::to_vec(&run).map_err(|e| StateError::Corrupt(format!("decisions: {e}")))?;
        let mut lines = String::new();
        for a in &report.alerts {
            let doc =
                serde_json::to_string(a).map_err(|e| StateError::Corrupt(format!("alert: {e}")))?;
            lines.push_str(&doc);
            lines.push('\n');
        }
        let h = self.clone();
        Self::off_thread("history writer", move || {
            use std::io::Write;
            std::fs::create_dir_all(&h.dir).map_err(|e| Self::io_error(&h.dir, e))?;
            h.write_latest_run(&run)?;
            if lines.is_empty() {
                return Ok(());
            }
            let io = |e| Self::io_error(&h.alert_log, e);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&h.alert_log)
                .map_err(io)?;
            f.write_all(lines.as_bytes())
                .and_then(|_| f.sync_data())
                .map_err(io)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::tests::sample_decision;
    use crate::decision::Status;

    fn run_with(alerts: Vec<Alert>) -> RunReport {
        RunReport {
            decided_at: alerts[0].decided_at,
            decisions: vec![],
            alerts,
            delivered: 0,
            pending: 0,
        }
    }

    #[tokio::test]
    async fn data_dir_keeps_the_latest_run_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let h = DataDirHistory::new(dir.path());
        assert_eq!(
            h.latest_decisions("acme").await.unwrap(),
            None,
            "before any run"
        );
        let first = sample_decision();
        let mut other = sample_decision();
        other.subject = crate::decision::Subject::OtSite {
            tenant: "globex".into(),
            site: "g1".into(),
        };
        let run = |decisions: Vec<Decision>, at| RunReport {
            decided_at: at,
            decisions,
            alerts: vec![],
            delivered: 0,
            pending: 0,
        };
        h.record_run(
            &run(vec![first.clone(), other.clone()], first.decided_at),
            &Settings::default(),
        )
        .await
        .unwrap();
        assert!(
            !dir.path().join(ALERT_LOG_FILE).exists(),
            "no alerts, no alert log"
        );
        assert_eq!(
            h.latest_decisions("acme").await.unwrap(),
            Some((first.decided_at, vec![first.clone()]))
        );
        // A later run replaces it; a reopened history reads the same.
        let mut second = first.clone();
        second.decided_at += chrono::Duration::hours(1);
        second.count = crate::count::Count::exact(1_200);
        h.record_run(
            &run(vec![second.clone()], second.decided_at),
            &Settings::default(),
        )
        .await
        .unwrap();
        let reopened = DataDirHistory::new(dir.path());
        assert_eq!(
            reopened.latest_decisions("acme").await.unwrap(),
            Some((second.decided_at, vec![second]))
        );
        assert_eq!(
            reopened.latest_decisions("globex").await.unwrap(),
            None,
            "not decided on in the latest run"
        );
        assert!(!dir.path().join("latest_run.json.tmp").exists());
    }

    /// An alert of `tenant` decided `minutes` after the sample decision.
    fn alert(tenant: &str, minutes: i64, old: &Status) -> Alert {
        let mut d = sample_decision();
        d.decided_at += chrono::Duration::minutes(minutes);
        let mut a = Alert::from_decision(&d, Some(old), &Settings::default());
        a.tenant = tenant.into();
        a
    }

    #[test]
    fn decision_documents_read_back_as_written() {
        // What reconciliation_runs.decision stores is what latest_decisions parses.
        let d = sample_decision();
        let doc = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Decision>(&doc).unwrap(), d);
    }

    #[tokio::test]
    async fn file_alert_log_filters_orders_limits_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("nested");
        let log = DataDirHistory::new(&nested);
        let t0 = sample_decision().decided_at;
        assert!(
            log.alerts("acme", t0, t0, 10).await.unwrap().is_empty(),
            "no file yet: no alerts"
        );
        let first = alert("acme", 0, &Status::WithinTier);
        let second = alert("acme", 60, &Status::NearLimit);
        let other = alert("globex", 30, &Status::WithinTier);
        log.record_run(
            &run_with(vec![first.clone(), other.clone()]),
            &Settings::default(),
        )
        .await
        .unwrap();
        log.record_run(&run_with(vec![second.clone()]), &Settings::default())
            .await
            .unwrap();
        // A resend logged again is listed once.
        log.record_run(&run_with(vec![second.clone()]), &Settings::default())
            .await
            .unwrap();

        let reopened = DataDirHistory::new(&nested);
        let day = chrono::Duration::days(1);
        let listed = reopened
            .alerts("acme", t0 - day, t0 + day, 10)
            .await
            .unwrap();
        assert_eq!(
            listed,
            vec![second.clone(), first.clone()],
            "newest first, tenant only, no repeats"
        );
        assert_eq!(
            reopened
                .alerts("acme", t0 - day, t0 + day, 1)
                .await
                .unwrap(),
            vec![second.clone()]
        );
        assert_eq!(
            reopened
                .alerts("acme", t0, t0 + chrono::Duration::minutes(59), 10)
                .await
                .unwrap(),
            vec![first]
        );
        assert_eq!(
            reopened
                .alerts("globex", t0 - day, t0 + day, 10)
                .await
                .unwrap(),
            vec![other]
        );
    }

    #[tokio::test]
    async fn file_alert_log_skips_a_torn_last_line_and_names_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ALERT_LOG_FILE);
        let log = DataDirHistory::new(dir.path());
        let a = alert("acme", 0, &Status::WithinTier);
        log.record_run(&run_with(vec![a.clone()]), &Settings::default())
            .await
            .unwrap();
        let t0 = a.decided_at;
        let day = chrono::Duration::days(1);
        // A crash mid-append leaves a partial line without its newline.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"idempotency_key\":\"tor");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(
            log.alerts("acme", t0 - day, t0 + day, 10).await.unwrap(),
            vec![a]
        );
        // A complete line that is not an alert is corruption, reported with its line.
        text.push_str("n\n");
        std::fs::write(&path, &text).unwrap();
        match log.alerts("acme", t0 - day, t0 + day, 10).await {
            Err(StateError::Corrupt(why)) => assert!(why.contains("line 2"), "{why}"),
            other => panic!("expected a corrupt-log error, got {other:?}"),
        }
    }

    #[test]
    fn placeholders_per_row_and_column() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholders(1, 1), "(?)");
    }
}
