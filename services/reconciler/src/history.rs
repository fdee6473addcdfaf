//! The reconciler's memory in ClickHouse (migrations 004–006):
//! - `alert_state`: per-subject alert state, so a reconciler restarted anywhere (another
//!   host, a new container) resumes its hysteresis and outbox and sends no alert twice;
//! - `alert_log`: every alert raised, for the alert-history API and plain SQL;
//! - `reconciliation_runs`: every decision of every run, for history and trend queries.
//!
//! Every value is bound, never spliced into SQL.

use crate::alert::{Alert, AlertStateStore, StateError, SubjectState};
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
    async fn alerts(&self, tenant: &str, from: DateTime<Utc>, to: DateTime<Utc>, limit: u64) -> Result<Vec<Alert>, StateError>;
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
        Self { client: store.client().clone(), db: store.database().to_string() }
    }
}

#[async_trait::async_trait]
impl AlertStateStore for ClickHouseHistory {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        let sql = format!("SELECT argMax(state, saved_ms) FROM {}.alert_state GROUP BY subject", self.db);
        let docs: Vec<String> = self.client.query(&sql).fetch_all().await.map_err(unavailable)?;
        docs.iter()
            .map(|d| {
                let s: SubjectState = serde_json::from_str(d).map_err(|e| StateError::Corrupt(format!("alert_state: {e}")))?;
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
            .query(&format!("SELECT max(saved_ms) FROM {}.alert_state WHERE subject = ?", self.db))
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
    async fn alerts(&self, tenant: &str, from: DateTime<Utc>, to: DateTime<Utc>, limit: u64) -> Result<Vec<Alert>, StateError> {
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
            .map(|d| serde_json::from_str(d).map_err(|e| StateError::Corrupt(format!("alert_log: {e}"))))
            .collect()
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
                let doc = serde_json::to_string(d).map_err(|e| StateError::Corrupt(e.to_string()))?;
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
                let doc = serde_json::to_string(a).map_err(|e| StateError::Corrupt(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_per_row_and_column() {
        assert_eq!(placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(placeholders(1, 1), "(?)");
    }
}
