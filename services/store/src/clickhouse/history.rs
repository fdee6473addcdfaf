//! The reconciler's memory in ClickHouse (migrations 004–007): `alert_state` (newest save
//! wins), `alert_log`, `reconciliation_runs` and `licences`. Every value is bound, never
//! spliced into SQL.

use super::queries::Query;
use super::ClickHouseStore;
use crate::history::{
    corrupt, latest_run, parse_all, states_by_subject, AlertLog, AlertStateStore, DecisionHistory,
    LatestRun, LicenceTable, RunHistory, StateError,
};
use crate::CountFilter;
use chrono::{DateTime, Utc};
use sitetally_licensing::{Alert, Decision, Settings, SubjectState};
use std::collections::HashMap;

fn unavailable(e: clickhouse::error::Error) -> StateError {
    StateError::Unavailable(e.to_string())
}

fn to_json(what: &str, value: &impl serde::Serialize) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|e| corrupt(what, e))
}

#[async_trait::async_trait]
impl AlertStateStore for ClickHouseStore {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        let sql = Query::AlertStates.sql(self.database(), &CountFilter::all());
        let docs: Vec<String> = self
            .client()
            .query(&sql)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        states_by_subject("alert_state", &docs)
    }

    async fn save(&self, state: &SubjectState) -> Result<(), StateError> {
        let doc = to_json("alert_state", state)?;
        let db = self.database();
        // The newest save wins: stamp it strictly after the subject's newest, so two saves
        // within one millisecond still replace each other in order.
        let saved_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let newest: u64 = self
            .client()
            .query(&Query::NewestAlertState.sql(db, &CountFilter::all()))
            .bind(state.subject.key())
            .fetch_one()
            .await
            .map_err(unavailable)?;
        self.client()
            .query(&Query::SaveAlertState.sql(db, &CountFilter::all()))
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
impl AlertLog for ClickHouseStore {
    async fn alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Alert>, StateError> {
        let sql = Query::Alerts.sql(self.database(), &CountFilter::all());
        let docs: Vec<String> = self
            .client()
            .query(&sql)
            .bind(tenant)
            .bind(from.timestamp())
            .bind(to.timestamp())
            .bind(limit)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        parse_all("alert_log", &docs)
    }
}

#[async_trait::async_trait]
impl DecisionHistory for ClickHouseStore {
    async fn latest_decisions(&self, tenant: &str) -> Result<LatestRun, StateError> {
        // run_id is the run's time to the millisecond, so its maximum is the latest run.
        let sql = Query::LatestDecisions.sql(self.database(), &CountFilter::all());
        let docs: Vec<String> = self
            .client()
            .query(&sql)
            .bind(tenant)
            .bind(tenant)
            .fetch_all()
            .await
            .map_err(unavailable)?;
        latest_run("reconciliation_runs", &docs)
    }
}

#[async_trait::async_trait]
impl RunHistory for ClickHouseStore {
    async fn record_run(
        &self,
        decided_at: DateTime<Utc>,
        decisions: &[Decision],
        alerts: &[Alert],
        settings: &Settings,
    ) -> Result<(), StateError> {
        let run_at = decided_at.timestamp();
        let run_id = format!("{}", decided_at.format("%Y%m%dT%H%M%S%.3fZ"));
        if !decisions.is_empty() {
            let sql = Query::RecordRuns {
                rows: decisions.len(),
            }
            .sql(self.database(), &CountFilter::all());
            let mut q = self.client().query(&sql);
            for d in decisions {
                // The alert projection names the tiers and the count the same way alerts do.
                let a = Alert::from_decision(d, None, settings);
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
                    .bind(to_json("decision", d)?);
            }
            q.execute().await.map_err(unavailable)?;
        }
        if !alerts.is_empty() {
            let sql = Query::RecordAlerts { rows: alerts.len() }
                .sql(self.database(), &CountFilter::all());
            let mut q = self.client().query(&sql);
            for a in alerts {
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
                    .bind(to_json("alert", a)?);
            }
            q.execute().await.map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl LicenceTable for ClickHouseStore {
    async fn put_licences(
        &self,
        documents: &[(String, String)],
        updated_ms: u64,
    ) -> Result<(), StateError> {
        if documents.is_empty() {
            return Ok(());
        }
        let sql = Query::PutLicences {
            rows: documents.len(),
        }
        .sql(self.database(), &CountFilter::all());
        let mut q = self.client().query(&sql);
        for (tenant, document) in documents {
            q = q.bind(tenant).bind(document).bind(updated_ms);
        }
        q.execute().await.map_err(unavailable)
    }

    async fn licence_documents(&self) -> Result<Vec<(String, String)>, StateError> {
        self.client()
            .query(&Query::LicenceDocuments.sql(self.database(), &CountFilter::all()))
            .fetch_all()
            .await
            .map_err(unavailable)
    }
}
