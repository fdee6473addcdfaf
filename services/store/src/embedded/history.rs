//! The reconciler's memory in the embedded store's SQLite file (migration 3), so the demo
//! and `--data-dir` deployments keep it in one file with transactions, as ClickHouse
//! keeps it in its tables:
//! - `alert_state`: one row per subject, replaced on save;
//! - `alert_log`: one row per idempotency key, the newest copy kept;
//! - `latest_run`: each tenant's decisions of the latest run that decided on it;
//! - `licences`: one document per tenant, the newest import kept.

use super::{classify, EmbeddedStore};
use crate::history::{
    corrupt, latest_run, parse_all, states_by_subject, AlertLog, AlertStateStore, DecisionHistory,
    LatestRun, LicenceTable, RunHistory, StateError,
};
use chrono::{DateTime, Utc};
use rusqlite::params;
use sitetally_licensing::{Alert, Decision, Settings, SubjectState};
use std::collections::{BTreeMap, HashMap};

/// The tables of this module, applied as the store's migration 3.
pub(super) const MIGRATION: &str = "
    CREATE TABLE alert_state (
        subject TEXT NOT NULL PRIMARY KEY,
        tenant  TEXT NOT NULL,
        state   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE alert_log (
        idempotency_key TEXT    NOT NULL PRIMARY KEY,
        tenant          TEXT    NOT NULL,
        raised_at_ms    INTEGER NOT NULL,
        alert           TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX alert_log_tenant ON alert_log (tenant, raised_at_ms);
    CREATE TABLE latest_run (
        tenant        TEXT    NOT NULL,
        subject       TEXT    NOT NULL,
        decided_at_ms INTEGER NOT NULL,
        decision      TEXT    NOT NULL,
        PRIMARY KEY (tenant, subject)
    ) WITHOUT ROWID;
    CREATE TABLE licences (
        tenant     TEXT    NOT NULL PRIMARY KEY,
        document   TEXT    NOT NULL,
        updated_ms INTEGER NOT NULL
    ) WITHOUT ROWID;";

fn to_json(what: &str, value: &impl serde::Serialize) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|e| corrupt(what, e))
}

#[async_trait::async_trait]
impl AlertStateStore for EmbeddedStore {
    async fn load_all(&self) -> Result<HashMap<String, SubjectState>, StateError> {
        let docs: Vec<String> = self
            .with_inner(|inner| {
                let mut stmt = inner
                    .conn
                    .prepare("SELECT state FROM alert_state")
                    .map_err(classify)?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(classify)?;
                rows.collect::<Result<_, _>>().map_err(classify)
            })
            .await?;
        states_by_subject("alert_state", &docs)
    }

    async fn save(&self, state: &SubjectState) -> Result<(), StateError> {
        let doc = to_json("alert_state", state)?;
        let (subject, tenant) = (state.subject.key(), state.subject.tenant().to_string());
        self.with_inner(move |inner| {
            inner
                .conn
                .execute(
                    "INSERT OR REPLACE INTO alert_state (subject, tenant, state) VALUES (?1, ?2, ?3)",
                    params![subject, tenant, doc],
                )
                .map(drop)
                .map_err(classify)
        })
        .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl AlertLog for EmbeddedStore {
    async fn alerts(
        &self,
        tenant: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<Alert>, StateError> {
        let tenant = tenant.to_string();
        // Inclusive to the second, as ClickHouse's DateTime column compares.
        let (from_ms, to_ms) = (from.timestamp() * 1000, to.timestamp() * 1000 + 999);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let docs: Vec<String> = self
            .with_inner(move |inner| {
                let mut stmt = inner
                    .conn
                    .prepare(
                        "SELECT alert FROM alert_log WHERE tenant = ?1 AND raised_at_ms >= ?2 \
                         AND raised_at_ms <= ?3 ORDER BY raised_at_ms / 1000 DESC, idempotency_key LIMIT ?4",
                    )
                    .map_err(classify)?;
                let rows = stmt
                    .query_map(params![tenant, from_ms, to_ms, limit], |r| r.get(0))
                    .map_err(classify)?;
                rows.collect::<Result<_, _>>().map_err(classify)
            })
            .await?;
        parse_all("alert_log", &docs)
    }
}

#[async_trait::async_trait]
impl DecisionHistory for EmbeddedStore {
    async fn latest_decisions(&self, tenant: &str) -> Result<LatestRun, StateError> {
        let tenant = tenant.to_string();
        let docs: Vec<String> = self
            .with_inner(move |inner| {
                let mut stmt = inner
                    .conn
                    .prepare("SELECT decision FROM latest_run WHERE tenant = ?1 ORDER BY subject")
                    .map_err(classify)?;
                let rows = stmt
                    .query_map(params![tenant], |r| r.get(0))
                    .map_err(classify)?;
                rows.collect::<Result<_, _>>().map_err(classify)
            })
            .await?;
        latest_run("latest_run", &docs)
    }
}

#[async_trait::async_trait]
impl RunHistory for EmbeddedStore {
    /// One transaction: each tenant decided on gets this run's decisions in place of its
    /// previous ones, and the run's alerts join the log (a resent alert keeps its newest
    /// copy).
    async fn record_run(
        &self,
        decided_at: DateTime<Utc>,
        decisions: &[Decision],
        alerts: &[Alert],
        _settings: &Settings,
    ) -> Result<(), StateError> {
        let at_ms = decided_at.timestamp_millis();
        let mut by_tenant: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for d in decisions {
            by_tenant
                .entry(d.subject.tenant().to_string())
                .or_default()
                .push((d.subject.key(), to_json("decision", d)?));
        }
        let alerts = alerts
            .iter()
            .map(|a| {
                Ok((
                    a.idempotency_key.clone(),
                    a.tenant.clone(),
                    a.decided_at.timestamp_millis(),
                    to_json("alert", a)?,
                ))
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        self.with_inner(move |inner| {
            let tx = inner.conn.transaction().map_err(classify)?;
            for (tenant, rows) in &by_tenant {
                tx.execute("DELETE FROM latest_run WHERE tenant = ?1", params![tenant])
                    .map_err(classify)?;
                for (subject, doc) in rows {
                    tx.execute(
                        "INSERT OR REPLACE INTO latest_run (tenant, subject, decided_at_ms, decision) VALUES (?1, ?2, ?3, ?4)",
                        params![tenant, subject, at_ms, doc],
                    )
                    .map_err(classify)?;
                }
            }
            for (key, tenant, raised_at_ms, doc) in &alerts {
                tx.execute(
                    "INSERT INTO alert_log (idempotency_key, tenant, raised_at_ms, alert) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (idempotency_key) DO UPDATE SET raised_at_ms = excluded.raised_at_ms, \
                     alert = excluded.alert WHERE excluded.raised_at_ms >= alert_log.raised_at_ms",
                    params![key, tenant, raised_at_ms, doc],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })
        .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl LicenceTable for EmbeddedStore {
    async fn put_licences(
        &self,
        documents: &[(String, String)],
        updated_ms: u64,
    ) -> Result<(), StateError> {
        let documents = documents.to_vec();
        let updated_ms = i64::try_from(updated_ms).unwrap_or(i64::MAX);
        self.with_inner(move |inner| {
            let tx = inner.conn.transaction().map_err(classify)?;
            for (tenant, document) in &documents {
                tx.execute(
                    "INSERT INTO licences (tenant, document, updated_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (tenant) DO UPDATE SET document = excluded.document, \
                     updated_ms = excluded.updated_ms WHERE excluded.updated_ms >= licences.updated_ms",
                    params![tenant, document, updated_ms],
                )
                .map_err(classify)?;
            }
            tx.commit().map_err(classify)
        })
        .await?;
        Ok(())
    }

    async fn licence_documents(&self) -> Result<Vec<(String, String)>, StateError> {
        Ok(self
            .with_inner(|inner| {
                let mut stmt = inner
                    .conn
                    .prepare("SELECT tenant, document FROM licences ORDER BY tenant")
                    .map_err(classify)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(classify)?;
                rows.collect::<Result<_, _>>().map_err(classify)
            })
            .await?)
    }
}
